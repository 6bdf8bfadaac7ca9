/* pii.c - the built-in PII and secret entities.  Each candidate pattern is
 * cheap and anchored where possible ('@', ':', 'AKIA', 'eyJ', '-----BEGIN')
 * so Vectorscan skips ordinary prose quickly, and all numeric entities share
 * one digit-run pattern (see K_NUM) that the engine matches itself; its
 * confirm step first drops the plain numbers of prose (fewer than seven
 * digits, lone dates) without running a grammar.  al_pii_confirm then parses the entity
 * with a small hand-written grammar from the anchor (for a digit run: from
 * each plausible start of the token, leftmost first), tries the longest
 * plausible span first, checks the word boundaries and the hard negatives
 * (numbers glued to other tokens, prices, dates and times, version strings,
 * UUID fragments, numbers in code) and runs the validator: Luhn and IIN
 * prefixes for cards, the per-country length and mod-97 for IBANs, the SSA
 * rules for SSNs, octet and group syntax for IPs, digit counts per
 * numbering plan (NANP, UK, DE, FR, IN and E.164 in general) for phones,
 * and the fixed structure of each secret.
 * Every parser looks at a bounded window, so one candidate costs O(1) work
 * however hostile the text; and since a digit run reports once per group,
 * the engine passes the digit-run confirm a floor (the starts refused by
 * the previous reports, see confirm_num) so that each start of a long run
 * of short groups is parsed about once rather than once per report. */
#include "guard/pii.h"

#include <hs.h>
#include <string.h>

/* --- character classes -------------------------------------------------- */

static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static inline bool is_alpha(unsigned char c) { return (unsigned char)((c | 0x20) - 'a') < 26; }
static inline bool is_alnum(unsigned char c) { return is_digit(c) || is_alpha(c); }
static inline bool is_word(unsigned char c) { return is_alnum(c) || c == '_'; }
static inline bool is_hex(unsigned char c)
{
    return is_digit(c) || (unsigned char)((c | 0x20) - 'a') < 6;
}
static inline bool is_b64url(unsigned char c) { return is_alnum(c) || c == '-' || c == '_'; }

#define AL_PEM_MAX 65536

#define AT(i) ((unsigned char)t[(i)])

/* --- entity names -------------------------------------------------------- */

static const char *const ent_names[AL_ENT_CUSTOM] = {
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET",
};

const char *al_pii_entity_name(unsigned ent)
{
    return ent < AL_ENT_CUSTOM ? ent_names[ent] : NULL;
}

int al_pii_entity_lookup(const char *name, size_t len)
{
    if (!name) return -1;
    for (unsigned i = 0; i < AL_ENT_CUSTOM; i++)
        if (strlen(ent_names[i]) == len && memcmp(ent_names[i], name, len) == 0) return (int)i;
    return -1;
}

/* --- validators ----------------------------------------------------------- */

static inline bool is_sep(unsigned char c) { return c == ' ' || c == '-' || c == '.'; }

/* Luhn over n plain digits (the card grammar's copy): doubled digits by
 * table, two digits per step. */
static bool luhn_plain(const unsigned char *d, size_t n)
{
    static const uint8_t dbl[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
    unsigned sum = 0;
    size_t i = n;
    while (i >= 2) {
        sum += (unsigned)(d[i - 1] - '0') + dbl[d[i - 2] - '0'];
        i -= 2;
    }
    if (i) sum += (unsigned)(d[0] - '0');
    return n >= 2 && sum % 10 == 0;
}

bool al_pii_luhn(const char *p, size_t len)
{
    if (!p) return false;
    unsigned sum = 0, n = 0;
    for (size_t i = len; i-- > 0;) {
        unsigned char c = (unsigned char)p[i];
        if (is_sep(c)) continue;
        if (!is_digit(c)) return false;
        unsigned d = c - '0';
        if (n & 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
        n++;
    }
    return n >= 2 && sum % 10 == 0;
}

/* Feeds one alphanumeric into a running mod-97 remainder (letters are two
 * digits, A = 10). */
static uint64_t mod97_feed(uint64_t r, unsigned char c)
{
    /* r stays below 10^16 between reductions, so r * 100 + 99 fits. */
    if (is_digit(c)) r = r * 10 + (c - '0');
    else r = r * 100 + (unsigned)((c | 0x20) - 'a') + 10;
    return r >= 10000000000000000ull ? r % 97 : r;
}

bool al_pii_mod97(const char *p, size_t len)
{
    if (!p) return false;
    /* The first four alphanumerics move to the end, as in an IBAN. */
    unsigned char head[4];
    size_t nh = 0, n = 0;
    uint64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_sep(c)) continue;
        if (!is_alnum(c)) return false;
        if (nh < 4) head[nh++] = c;
        else r = mod97_feed(r, c);
        n++;
    }
    if (n < 5) return false;
    for (size_t i = 0; i < 4; i++) r = mod97_feed(r, head[i]);
    return r % 97 == 1;
}

/* The validators of custom entities read only what they check: Luhn the
 * digits, mod-97 the alphanumerics, so "EMP-123456" or "ACC/12-34" pass
 * on their digits whatever the regex puts around them. */
static bool luhn_digits(const char *p, size_t len)
{
    unsigned sum = 0, n = 0;
    for (size_t i = len; i-- > 0;) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9) continue;
        if (n & 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
        n++;
    }
    return n >= 2 && sum % 10 == 0;
}

static bool mod97_alnum(const char *p, size_t len)
{
    unsigned char head[4];
    size_t nh = 0, n = 0;
    uint64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_alnum(c)) continue;
        if (nh < 4) head[nh++] = c;
        else r = mod97_feed(r, c);
        n++;
    }
    if (n < 5) return false;
    for (size_t i = 0; i < 4; i++) r = mod97_feed(r, head[i]);
    return r % 97 == 1;
}

bool al_pii_validate(al_validator_t v, const char *p, size_t len)
{
    if (!p && len) return false;
    switch (v) {
    case AL_VAL_NONE: return true;
    case AL_VAL_LUHN: return p && luhn_digits(p, len);
    case AL_VAL_MOD97: return p && mod97_alnum(p, len);
    }
    return false;
}

bool al_pii_validator_lookup(const char *name, size_t len, al_validator_t *out)
{
    static const struct {
        const char *name;
        al_validator_t v;
    } tab[] = {{"none", AL_VAL_NONE}, {"luhn", AL_VAL_LUHN}, {"mod97", AL_VAL_MOD97}};
    if (!name) return false;
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, name, len) == 0) {
            if (out) *out = tab[i].v;
            return true;
        }
    return false;
}

/* --- patterns ------------------------------------------------------------- */

enum kind {
    K_EMAIL,
    K_NUM,     /* a run of 7+ digits, dots, dashes, spaces: every numeric entity */
    K_IPV6,
    K_AWS,
    K_SK,
    K_GH,
    K_GHPAT,
    K_SLACK,
    K_JWT,
    K_PEM,
};

/* Private contract with engine.c (same value there): a pattern with this
 * bit is not compiled; the engine finds its matches itself, exactly where
 * Vectorscan would report the expression (from = 0), plus at the first
 * digit d of a run led by '(' or by '+' and a non-zero digit (from = d,
 * to = d + 1).  No HS_FLAG_* uses the bit. */
#define AL_PAT_DIGIT_RUN (1u << 30)

/* Every numeric entity (national and international phones, cards, SSNs,
 * IBANs, IPv4) shares the single K_NUM pattern, matched by the engine's
 * own digit-run loop: a class-led pattern costs Vectorscan a pass of its
 * own over the text (measured: the database ran at half speed on prose with
 * ordinary numbers), while literal-led ones share the literal matcher, so
 * secrets are bare literals and the rest starts with '@' or ':'.  The
 * trailing non-digit makes K_NUM report once per digit group instead of
 * once per digit.  Phones led by '+' or '(' are found from their digit run
 * (confirm_num walks left over them). */
static const al_pat_t pats[] = {
    {"[A-Za-z0-9._%+\\-]@[A-Za-z0-9]", 0},
    {"[0-9][0-9. \\-]{5,}[0-9](?:[^0-9]|$)", AL_PAT_DIGIT_RUN},
    {":[0-9A-Fa-f]{1,4}:", 0},
    {"::", 0},
    {"AKIA", 0},
    {"ASIA", 0},
    {"sk-", 0},
    {"ghp_", 0},
    {"gho_", 0},
    {"ghu_", 0},
    {"ghs_", 0},
    {"ghr_", 0},
    {"github_pat_", 0},
    {"xoxb-", 0},
    {"xoxp-", 0},
    {"xoxa-", 0},
    {"xoxr-", 0},
    {"xoxs-", 0},
    {"eyJ", 0},
    {"-----BEGIN ", 0},
};

static const unsigned char pat_kind[] = {
    K_EMAIL, K_NUM,   K_IPV6,  K_IPV6,  K_AWS,   K_AWS,   K_SK,    K_GH,    K_GH,    K_GH,
    K_GH,    K_GH,    K_GHPAT, K_SLACK, K_SLACK, K_SLACK, K_SLACK, K_SLACK, K_JWT,   K_PEM,
};

/* Length of each literal pattern (the rest: 0). */
static const uint8_t pat_len[] = {
    0, 0, 0, 0, 4, 4, 3, 4, 4, 4, 4, 4, 11, 5, 5, 5, 5, 5, 3, 11,
};

_Static_assert(sizeof(pats) / sizeof(pats[0]) == sizeof(pat_kind), "pattern table mismatch");
_Static_assert(sizeof(pat_len) == sizeof(pat_kind), "pattern length table mismatch");

size_t al_pii_patterns(const al_pat_t **out)
{
    *out = pats;
    return sizeof(pats) / sizeof(pats[0]);
}

/* --- boundaries ----------------------------------------------------------- */

/* May a numeric entity start at s?  Not glued to a word, not a fragment of
 * a bigger number ("1,234,567", "v1.2", "ID-123"), not after a currency or
 * '#' (order numbers, prices), a path or an '@'. */
static bool num_start_ok(const char *t, size_t s)
{
    if (s == 0) return true;
    unsigned char p = AT(s - 1);
    if (is_word(p)) return false;
    switch (p) {
    case '$': case '#': case '/': case '\\': case '@': case '&': case '=': case '~': case '^':
    case '%': case '*':
        return false;
    default: break;
    }
    /* UTF-8 tails of the euro, pound and yen signs. */
    if (p == 0xAC || p == 0xA3 || p == 0xA5) return false;
    if ((p == '.' || p == ',' || p == '-' || p == ':' || p == '+') && s >= 2 && is_alnum(AT(s - 2)))
        return false;
    return true;
}

/* May a numeric entity end at e? */
static bool num_end_ok(const char *t, size_t len, size_t e)
{
    if (e >= len) return true;
    unsigned char c = AT(e);
    if (is_word(c) || c == '@' || c == '%') return false;
    if ((c == '.' || c == ',' || c == '-' || c == ':' || c == '/') && e + 1 < len &&
        is_alnum(AT(e + 1)))
        return false;
    return true;
}

static bool word_start_ok(const char *t, size_t s) { return s == 0 || !is_word(AT(s - 1)); }
static bool word_end_ok(const char *t, size_t len, size_t e) { return e >= len || !is_word(AT(e)); }

/* --- EMAIL ---------------------------------------------------------------- */

static inline bool is_local(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static int confirm_email(const char *t, size_t len, size_t to, size_t *os, size_t *oe)
{
    /* The match is a local-part byte, '@' and the domain's first byte.  (The
     * pattern used to run on to the TLD, "@[A-Za-z0-9-]+\.[A-Za-z]{2}"; in a
     * database without a class-led pattern, Vectorscan 5.4.9 on this AVX-512
     * machine missed most of its matches more than ~60 bytes into a text,
     * and "@[A-Za-z0-9]" alone as well, while this form finds every one.) */
    size_t at = to;
    size_t lim = to > 300 ? to - 300 : 0;
    while (at > lim && AT(at - 1) != '@') at--;
    if (at == lim) return -1;
    at--;   /* at: index of '@' */
    {
        /* What the pattern used to require: the first domain label, a dot
         * and two letters. */
        size_t j = at + 1;
        while (j < len && j - at <= 64 && (is_alnum(AT(j)) || AT(j) == '-')) j++;
        if (j == at + 1 || j + 2 >= len || AT(j) != '.' || !is_alpha(AT(j + 1)) ||
            !is_alpha(AT(j + 2)))
            return -1;
    }
    size_t s = at;
    while (s > 0 && at - s < 64 && is_local(AT(s - 1))) s--;
    if (s > 0 && is_local(AT(s - 1))) return -1;   /* local part too long */
    while (s < at && (AT(s) == '.' || AT(s) == '-' || AT(s) == '+')) s++;
    if (s == at || AT(at - 1) == '.') return -1;
    if (s > 0 && (is_word(AT(s - 1)) || AT(s - 1) == '@')) return -1;
    {
        /* A token in a URL's user part ("https://ghp_...@github.com") is a
         * SECRET, not an address: leave it to the secret patterns. */
        static const char *const tok[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
                                          "sk-", "xox", "AKIA", "ASIA", "glpat-"};
        for (size_t k = 0; k < sizeof tok / sizeof tok[0]; k++) {
            size_t tl = strlen(tok[k]);
            if (at - s > tl + 8 && memcmp(t + s, tok[k], tl) == 0) return -1;
        }
    }
    /* Domain labels. */
    size_t e = at + 1, last_label = e, end_ok = 0;
    int labels = 0;
    while (e < len && e - at <= 255) {
        size_t ls = e;
        while (e < len && e - ls < 63 && (is_alnum(AT(e)) || AT(e) == '-')) e++;
        if (e == ls || AT(ls) == '-' || AT(e - 1) == '-') break;
        labels++;
        last_label = ls;
        end_ok = e;
        if (e + 1 < len && AT(e) == '.' && is_alnum(AT(e + 1))) {
            e++;
            continue;
        }
        break;
    }
    if (labels < 2 || !end_ok) return -1;
    e = end_ok;
    /* The TLD is letters only, at least two. */
    if (e - last_label < 2) return -1;
    for (size_t i = last_label; i < e; i++)
        if (!is_alpha(AT(i))) return -1;
    if (e < len && (is_word(AT(e)) || AT(e) == '@' || AT(e) == '-')) return -1;
    *os = s;
    *oe = e;
    return AL_ENT_EMAIL;
}

/* --- PHONE ---------------------------------------------------------------- */

typedef struct pgroup {
    uint8_t n;        /* digits */
    uint8_t paren;    /* inside ( ) */
    char sep;         /* separator before it, 0 if none */
    size_t start, end;   /* digits [start, start+n); end after ')' */
} pgroup_t;

#define MAX_PGROUPS 8

/* Code around a bare number: "x = 4155552671;", "[4155552671, 2]",
 * "f(1, 4155552671, 2)".  A comma on one side only is prose ("call
 * 0123456789, or ..."); commas between numbers on both sides are a list. */
static bool in_code(const char *t, size_t len, size_t s, size_t e)
{
    size_t i = s;
    bool comma_before = false, comma_after = false;
    while (i > 0 && (AT(i - 1) == ' ' || AT(i - 1) == '\t')) i--;
    if (i > 0) {
        unsigned char p = AT(i - 1);
        if (p == '=' || p == '[' || p == '{' || p == '<' || p == '>') return true;
        /* f(4155552671) is a call; "(4155552671)" in a sentence is not. */
        if (p == '(' && i >= 2 && is_word(AT(i - 2))) return true;
        if (p == ',') {
            size_t k = i - 1;
            while (k > 0 && AT(k - 1) == ' ') k--;
            comma_before = k > 0 && is_digit(AT(k - 1));
        }
    }
    size_t j = e;
    while (j < len && (AT(j) == ' ' || AT(j) == '\t')) j++;
    if (j < len) {
        unsigned char c = AT(j);
        if (c == ';' || c == ']' || c == '}') return true;
        if (c == ',') {
            size_t k = j + 1;
            while (k < len && AT(k) == ' ') k++;
            comma_after = k < len && is_digit(AT(k));
        }
    }
    return comma_before && comma_after;
}

static bool nanp_ok(const unsigned char *d) { return d[0] >= '2' && d[3] >= '2'; }

/* The digits of groups g[0, ng) once for every prefix phone_valid tries:
 * d holds them (a "(0)" trunk after a country code left out), nd[k] and
 * dot[k] the digit count and whether a '.' separates groups g[0, k). */
typedef struct pdigits {
    unsigned char d[40];
    uint8_t nd[MAX_PGROUPS + 1];
    bool dot[MAX_PGROUPS + 1];
} pdigits_t;

#define PD_READ 8u

static bool phone_digits(const pgroup_t *g, int ng, bool plus, const char *t, pdigits_t *pd)
{
    size_t nd = 0;
    bool dot = false;
    pd->nd[0] = 0;
    pd->dot[0] = false;
    for (int i = 0; i < ng; i++) {
        bool trunk = plus && i > 0 && g[i].paren && g[i].n == 1 && AT(g[i].start) == '0';
        if (!trunk) {
            if (nd + g[i].n > sizeof(pd->d)) return false;
            /* phone_valid reads the first seven digits at most (a "00"
             * prefix, then a country code or two NANP leads). */
            if (nd < PD_READ)
                memcpy(pd->d + nd, t + g[i].start, g[i].n < PD_READ - nd ? g[i].n : PD_READ - nd);
            nd += g[i].n;
            if (g[i].sep == '.') dot = true;
        }
        pd->nd[i + 1] = (uint8_t)nd;
        pd->dot[i + 1] = dot;
    }
    return true;
}

/* Is groups g[0, k) (with a leading '+' when plus) a plausible phone? */
static bool phone_valid(const pgroup_t *g, int k, bool plus, const char *t, const pdigits_t *pd)
{
    const unsigned char *d = pd->d;
    size_t nd = pd->nd[k];
    char dotsep = pd->dot[k] ? '.' : 0;
    bool plus_in = plus;
    if (!plus && nd >= 2 && d[0] == '0' && d[1] == '0') {
        /* "001-415-555-2671": the international prefix spelled out. */
        /* Not the tail of a longer digit sequence ("DE89 3704 0044 ..."). */
        if (g[0].start >= 2 && AT(g[0].start - 1) == ' ' && is_digit(AT(g[0].start - 2)))
            return false;
        d += 2;
        nd -= 2;
        plus = true;
    }
    if (nd < 7 || nd > 15) return false;
    /* The digit counts the plans below accept without a '+', checked before
     * the layout rules (a cheap refusal for runs of short groups). */
    if (!plus && (d[0] == '0' ? nd < 10 || nd > 12 : d[0] == '1' ? nd != 11 : nd != 10))
        return false;
    if (!plus_in && k >= 3) {
        /* 0901-3841-1283: groups of four are serials and keys, not phones. */
        bool all4 = true;
        for (int i = 0; i < k; i++) all4 &= g[i].n == 4;
        if (all4) return false;
    }
    /* A date (2024-01-15, 15-01-2024) anywhere inside is not a phone. */
    for (int i = 0; i + 2 < k; i++) {
        bool ymd = g[i].n == 4 && g[i + 1].n == 2 && g[i + 2].n == 2;
        bool dmy = g[i].n == 2 && g[i + 1].n == 2 && g[i + 2].n == 4;
        if ((ymd || dmy) && g[i + 1].sep == '-' && g[i + 2].sep == '-') return false;
    }
    if (dotsep) {
        /* Dots only in 3.3.4 (US) and 2.2.2.2.2 (FR) layouts: everything
         * else dotted is a version or an address. */
        bool us = k == 3 && g[0].n == 3 && g[1].n == 3 && g[2].n == 4;
        bool us1 = k == 4 && g[0].n == 1 && g[1].n == 3 && g[2].n == 3 && g[3].n == 4;
        bool fr = k == 5 && g[0].n == 2 && g[1].n == 2 && g[2].n == 2 && g[3].n == 2 &&
                  g[4].n == 2;
        if (!us && !us1 && !fr && !plus) return false;
    }
    if (plus) {
        if (d[0] == '1') return nd == 11;
        if (d[0] == '4' && d[1] == '4') return nd == 11 || nd == 12;
        if (d[0] == '4' && d[1] == '9') return nd >= 8 && nd <= 15;
        if (d[0] == '3' && d[1] == '3') return nd == 11;
        if (d[0] == '9' && d[1] == '1') return nd == 12;
        return nd >= 8 && nd <= 15;
    }
    if (d[0] == '0') {
        if (d[1] == '0') return false;

        return nd >= 10 && nd <= (k == 1 ? 11u : 12u);
    }
    if (d[0] == '1') {
        /* 1-800-555-0199: the NANP trunk prefix alone, then 3-3-4. */
        return nd == 11 && g[0].n == 1 && k == 4 && nanp_ok(d + 1);
    }
    if (nd != 10) return false;
    if (k == 1) return nanp_ok(d) || d[0] >= '6';
    if (k == 3 && g[0].n == 3 && g[1].n == 3 && g[2].n == 4) {
        /* 415-555-2671, (415)555-2671, 415.555.2671 are phone-shaped
         * whatever the digits; three spaced numbers need a NANP shape. */
        if (g[1].sep == ' ' && g[2].sep == ' ' && !g[0].paren) return nanp_ok(d);
        return true;
    }
    if (k == 2 && g[0].n == 5 && g[1].n == 5) return d[0] >= '2';
    if (k == 2 && g[0].n == 3 && g[0].paren && g[1].n == 7) return nanp_ok(d);
    return false;
}

/* An extension right after a phone: "x123", " x123", " ext. 123". */
static size_t phone_ext(const char *t, size_t len, size_t e)
{
    size_t i = e;
    if (i < len && AT(i) == ' ') i++;
    if (i < len && AT(i) == 'x') i++;
    else if (i + 3 <= len && memcmp(t + i, "ext", 3) == 0) {
        i += 3;
        if (i < len && AT(i) == '.') i++;
        if (i < len && AT(i) == ' ') i++;
    } else
        return e;
    size_t ds = i;
    while (i < len && i - ds < 6 && is_digit(AT(i))) i++;
    if (i == ds || i - ds > 5 || (i < len && is_word(AT(i)))) return e;
    return i;
}

static int confirm_phone(const char *t, size_t len, size_t from, size_t *os, size_t *oe)
{
    size_t s = from, p = from;
    bool plus = false;
    if (p < len && AT(p) == '+') {
        plus = true;
        p++;
        /* "Tel:+44" is fine, "a+1" or "1+1" is not. */
        if (s > 0 && is_word(AT(s - 1))) return -1;
    } else if (!num_start_ok(t, s)) {
        return -1;
    } else if (s >= 5 && AT(s - 1) == ' ' && is_digit(AT(s - 2)) && is_digit(AT(s - 5)) &&
               (s == 5 || !is_alnum(AT(s - 6)))) {
        /* The tail of a spaced sequence of 4-digit groups (an IBAN or card
         * whose own check failed) is not a phone of its own. */
        bool four = true;
        for (size_t i = s - 5; i < s - 1; i++) four &= is_digit(AT(i));
        if (four) return -1;
    }
    if (!plus && p < len && is_digit(AT(p)) && AT(p) != '0') {
        /* Without '+', phone_valid takes a first digit 1 only as the NANP
         * trunk alone ("1-800-..."), and 2..9 only in a first group of 3, 5
         * or 10 digits: refuse the rest before parsing (runs of short
         * groups, "12 34 12 34 ...", reach here at every group). */
        size_t q = p;
        while (q < len && q - p <= 15 && is_digit(AT(q))) q++;
        size_t n0 = q - p;
        if (AT(p) == '1' ? n0 != 1 : n0 != 3 && n0 != 5 && n0 != 10) return -1;
    }
    pgroup_t g[MAX_PGROUPS];
    int ng = 0;
    size_t total = 0;
    while (ng < MAX_PGROUPS && p < len && p - s < 40) {
        size_t q = p;
        char sep = 0;
        if (ng > 0 && (AT(q) == ' ' || AT(q) == '-' || AT(q) == '.')) {
            sep = (char)AT(q);
            q++;
        }
        bool paren = false;
        if (q < len && AT(q) == '(') {
            paren = true;
            q++;
        }
        size_t ds = q;
        while (q < len && q - ds <= 15 && is_digit(AT(q))) q++;
        size_t n = q - ds;
        if (n == 0 || n > 15) break;
        if (paren) {
            /* Parentheses hold an area code or the "(0)" trunk prefix. */
            if (q >= len || AT(q) != ')' || n > 5) break;
            q++;
        }
        /* A group followed by ':' and a digit is a time. */
        if (q + 1 < len && AT(q) == ':' && is_digit(AT(q + 1))) break;
        /* Two single-digit groups in a row are in no numbering plan's
         * format ("1 2 3 4 ..."): stop before such a run costs more. */
        if (n == 1 && !paren && ng > 0 && g[ng - 1].n == 1 && !g[ng - 1].paren) return -1;
        g[ng++] = (pgroup_t){(uint8_t)n, paren, sep, ds, q};
        total += n;
        p = q;
        if (total > 17) return -1;
    }
    if (ng == 0) return -1;
    if (plus && g[0].paren) return -1;
    pdigits_t pd;
    if (!phone_digits(g, ng, plus, t, &pd)) return -1;
    for (int k = ng; k >= 1; k--) {
        if (pd.nd[k] < 7) break;   /* fewer digits still in shorter prefixes */
        size_t e = g[k - 1].end;
        if (!num_end_ok(t, len, e)) {
            /* "2671x123": an extension is the only word glued on. */
            size_t x = phone_ext(t, len, e);
            if (x == e) continue;
        }
        if (!phone_valid(g, k, plus, t, &pd)) continue;
        bool bare = k == 1 && !plus;
        if (bare && in_code(t, len, s, e)) return -1;
        *os = s;
        *oe = phone_ext(t, len, e);
        return AL_ENT_PHONE;
    }
    return -1;
}

/* --- CREDIT_CARD ---------------------------------------------------------- */

static bool iin_ok(const unsigned char *d, size_t n)
{
    unsigned p2 = (unsigned)(d[0] - '0') * 10 + (d[1] - '0');
    unsigned p4 = p2 * 100 + (unsigned)(d[2] - '0') * 10 + (d[3] - '0');
    switch (d[0]) {
    case '4': return n == 13 || n == 16 || n == 19;
    case '5':
        if (p2 >= 51 && p2 <= 55) return n == 16;
        return (p2 == 50 || (p2 >= 56 && p2 <= 58)) && n >= 13;   /* Maestro */
    case '2':
        if (p4 == 2131) return n == 15;   /* JCB */
        return p4 >= 2221 && p4 <= 2720 && n == 16;
    case '3':
        if (p2 == 34 || p2 == 37) return n == 15;
        if (p2 == 35) return p4 >= 3528 && p4 <= 3589 && n >= 15;   /* JCB */
        if (p2 == 30 || p2 == 36 || p2 == 38 || p2 == 39) return n >= 14 && n <= 19;
        return false;
    case '6': return n >= 13;   /* Discover, UnionPay, Maestro, RuPay */
    case '1': return p4 >= 1800 && p4 <= 1800 && n == 15;   /* old JCB 1800 */
    default: return false;
    }
}

/* Maestro numbers may be 12 digits; only its own prefixes qualify there. */
static bool maestro12(const unsigned char *d)
{
    unsigned p2 = (unsigned)(d[0] - '0') * 10 + (d[1] - '0');
    unsigned p4 = p2 * 100 + (unsigned)(d[2] - '0') * 10 + (d[3] - '0');
    return p4 == 5018 || p4 == 5020 || p4 == 5038 || (p2 >= 56 && p2 <= 58) || p4 == 6304 ||
           p4 == 6759 || (p4 >= 6761 && p4 <= 6763) || p4 == 604 || p4 == 6390;
}

static bool card_layout_ok(const uint8_t *gn, int k)
{
    if (k == 1) return true;
    if (k == 3 && gn[0] == 4 && gn[1] == 6 && (gn[2] == 5 || gn[2] == 4)) return true;
    for (int i = 0; i < k - 1; i++)
        if (gn[i] != 4) return false;
    return gn[k - 1] >= 1 && gn[k - 1] <= 4;
}

static int confirm_card(const char *t, size_t len, size_t from, size_t *os, size_t *oe)
{
    size_t s = from;
    /* Every issuer starts with 1..6; most digit runs fail here at once. */
    if (s >= len || AT(s) > '6' || !num_start_ok(t, s)) return -1;
    uint8_t gn[8];
    size_t gend[8], gtot[8];
    unsigned char d[24];
    size_t gds[8];
    bool have_d = false;   /* the digits are gathered only for a plausible layout */
    int ng = 0;
    size_t p = s, total = 0;
    char sep = 0;
    while (ng < 8 && p < len) {
        size_t q = p;
        if (ng > 0) {
            unsigned char c = AT(q);
            if (c != ' ' && c != '-') break;
            if (sep && c != sep) break;
            q++;
            if (q >= len || !is_digit(AT(q))) break;
            sep = (char)c;
        }
        size_t ds = q;
        while (q < len && q - ds <= 19 && is_digit(AT(q))) q++;
        size_t n = q - ds;
        if (n > 19 || total + n > 19) break;
        total += n;
        gds[ng] = ds;
        gn[ng] = (uint8_t)n;
        gend[ng] = q;
        gtot[ng] = total;
        ng++;
        p = q;
    }
    for (int k = ng; k >= 1; k--) {
        size_t e = gend[k - 1], nd = gtot[k - 1];
        if (nd < 12) break;
        if (!card_layout_ok(gn, k)) continue;
        if (!num_end_ok(t, len, e)) continue;
        if (!have_d) {
            for (int i = 0; i < ng; i++) memcpy(d + gtot[i] - gn[i], t + gds[i], gn[i]);
            have_d = true;
        }
        if (nd == 12 ? k != 1 || !maestro12(d) : !iin_ok(d, nd)) continue;
        if (!luhn_plain(d, nd)) continue;
        *os = s;
        *oe = e;
        return AL_ENT_CREDIT_CARD;
    }
    return -1;
}

/* --- IBAN ----------------------------------------------------------------- */

static const struct {
    char cc[3];
    uint8_t len;
} iban_len[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
    {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22},
    {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20},
    {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
    {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HN", 28}, {"HR", 21},
    {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30},
    {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20},
    {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23},
    {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22},
    {"RU", 33}, {"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24},
    {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26},
    {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

/* Binary search: the table is sorted by country code. */
static unsigned iban_country_len(const char *cc)
{
    unsigned key = (unsigned)(unsigned char)cc[0] << 8 | (unsigned char)cc[1];
    size_t lo = 0, hi = sizeof(iban_len) / sizeof(iban_len[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        unsigned k = (unsigned)(unsigned char)iban_len[mid].cc[0] << 8 |
                     (unsigned char)iban_len[mid].cc[1];
        if (k == key) return iban_len[mid].len;
        if (k < key) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int confirm_iban(const char *t, size_t len, size_t from, size_t *os, size_t *oe)
{
    size_t s = from;
    if (!word_start_ok(t, s) || s + 4 > len) return -1;
    unsigned want = iban_country_len(t + s);
    if (!want) return -1;
    size_t p = s;
    unsigned n = 0;
    int spaced = -1;   /* unknown, 0 no, 1 yes */
    while (p < len && n < want) {
        if (n > 0 && n % 4 == 0 && AT(p) == ' ') {
            if (spaced == 0) break;
            spaced = 1;
            p++;
            continue;
        }
        if (n > 0 && n % 4 == 0 && spaced == -1) spaced = 0;
        unsigned char c = AT(p);
        if (!(is_digit(c) || is_upper(c))) break;
        p++;
        n++;
        if (n > 0 && n % 4 == 0 && spaced == 1 && n < want && (p >= len || AT(p) != ' ')) break;
    }
    if (n != want) return -1;
    if (!word_end_ok(t, len, p)) return -1;
    if (!al_pii_mod97(t + s, p - s)) return -1;
    *os = s;
    *oe = p;
    return AL_ENT_IBAN;
}

/* --- US_SSN --------------------------------------------------------------- */

static int confirm_ssn(const char *t, size_t len, size_t from, size_t *os, size_t *oe)
{
    size_t s = from, e = from + 11;
    if (e > len || !num_start_ok(t, s) || !num_end_ok(t, len, e)) return -1;
    const char *p = t + s;
    for (int i = 0; i < 11; i++) {
        bool sep = i == 3 || i == 6;
        if (sep ? !(p[i] == '-' || p[i] == ' ') : !is_digit((unsigned char)p[i])) return -1;
    }
    if (p[3] != p[6]) return -1;
    unsigned area = (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
    if (area == 0 || area == 666 || area >= 900) return -1;
    if (p[4] == '0' && p[5] == '0') return -1;
    if (p[7] == '0' && p[8] == '0' && p[9] == '0' && p[10] == '0') return -1;
    *os = s;
    *oe = e;
    return AL_ENT_US_SSN;
}

/* --- IP_ADDRESS ----------------------------------------------------------- */

/* Parses a dotted quad at p; returns its end or 0. */
static size_t parse_v4(const char *t, size_t len, size_t p)
{
    for (int o = 0; o < 4; o++) {
        if (o > 0) {
            if (p >= len || AT(p) != '.') return 0;
            p++;
        }
        size_t ds = p;
        unsigned v = 0;
        while (p < len && p - ds < 4 && is_digit(AT(p))) v = v * 10 + (AT(p++) - '0');
        size_t n = p - ds;
        if (n == 0 || n > 3 || v > 255 || (n > 1 && AT(ds) == '0')) return 0;
    }
    return p;
}

static int confirm_ipv4(const char *t, size_t len, size_t from, size_t *os, size_t *oe)
{
    size_t s = from;
    if (s > 0) {
        unsigned char c = AT(s - 1);
        if (is_word(c)) return -1;
        if ((c == '.' || c == '-') && s >= 2 && is_alnum(AT(s - 2))) return -1;
    }
    size_t e = parse_v4(t, len, s);
    if (!e) return -1;
    if (e < len) {
        unsigned char c = AT(e);
        if (is_word(c)) return -1;
        if ((c == '.' || c == '-') && e + 1 < len && is_alnum(AT(e + 1))) return -1;
    }
    *os = s;
    *oe = e;
    return AL_ENT_IP_ADDRESS;
}

/* Parses [s, e) as a whole IPv6 address (compressed forms, v4 tail). */
static bool ipv6_valid(const char *t, size_t s, size_t e)
{
    size_t p = s;
    int groups = 0;
    size_t maxg = 0;
    bool dbl = false;
    if (e - s >= 2 && AT(s) == ':' && AT(s + 1) == ':') {
        dbl = true;
        p = s + 2;
        if (p == e) return false;   /* "::" alone */
    } else if (AT(s) == ':') {
        return false;
    }
    while (p < e) {
        size_t gs = p;
        while (p < e && p - gs < 5 && is_hex(AT(p))) p++;
        size_t n = p - gs;
        if (p < e && AT(p) == '.') {
            /* A v4 tail takes the last two groups. */
            size_t v = parse_v4(t, e, gs);
            if (v != e) return false;
            groups += 2;
            p = e;
            break;
        }
        if (n == 0 || n > 4) return false;
        groups++;
        if (n > maxg) maxg = n;
        if (p == e) break;
        if (AT(p) != ':') return false;
        p++;
        if (p < e && AT(p) == ':') {
            if (dbl) return false;
            dbl = true;
            p++;
            if (p == e) break;
        } else if (p == e) {
            return false;   /* trailing single ':' */
        }
    }
    /* "a::b" is a scope in code far more often than an address: a
     * compressed form needs a leading "::", three groups or a long one. */
    if (dbl) return groups >= 1 && groups <= 7 && (AT(s) == ':' || groups >= 3 || maxg >= 3);
    return groups == 8;
}

static inline bool is_v6c(unsigned char c) { return is_hex(c) || c == ':' || c == '.'; }

static int confirm_ipv6(const char *t, size_t len, size_t to, size_t *os, size_t *oe)
{
    size_t a = to ? to - 1 : 0;
    size_t s = a, e = a;
    while (s > 0 && a - s < 45 && is_v6c(AT(s - 1))) s--;
    while (e < len && e - a < 45 && is_v6c(AT(e))) e++;
    /* Trailing sentence punctuation is not part of the address. */
    while (e > s && AT(e - 1) == '.') e--;
    if (e > s + 1 && AT(e - 1) == ':' && AT(e - 2) != ':') e--;
    while (s < e && AT(s) == '.') s++;
    if (e - s < 3 || e - s > 45) return -1;
    if (s > 0 && (is_word(AT(s - 1)) || is_v6c(AT(s - 1)))) return -1;
    if (e < len && (is_word(AT(e)) || AT(e) == '.' ) && !(AT(e) == '.' && (e + 1 >= len || !is_alnum(AT(e + 1)))))
        return -1;
    if (!ipv6_valid(t, s, e)) return -1;
    *os = s;
    *oe = e;
    return AL_ENT_IP_ADDRESS;
}

/* --- SECRET --------------------------------------------------------------- */

/* Body classes of token secrets, one bit each in cls_tab. */
enum { CL_UPDIG = 1, CL_ALNUM = 2, CL_WORD = 4, CL_B64URL = 8, CL_SLACK = 16 };
#define CL_D (CL_UPDIG | CL_ALNUM | CL_WORD | CL_B64URL | CL_SLACK)   /* digit, capital */
#define CL_L (CL_ALNUM | CL_WORD | CL_B64URL | CL_SLACK)              /* small letter */
static const uint8_t cls_tab[256] = {
    ['0'] = CL_D, ['1'] = CL_D, ['2'] = CL_D, ['3'] = CL_D, ['4'] = CL_D, ['5'] = CL_D,
    ['6'] = CL_D, ['7'] = CL_D, ['8'] = CL_D, ['9'] = CL_D,
    ['A'] = CL_D, ['B'] = CL_D, ['C'] = CL_D, ['D'] = CL_D, ['E'] = CL_D, ['F'] = CL_D,
    ['G'] = CL_D, ['H'] = CL_D, ['I'] = CL_D, ['J'] = CL_D, ['K'] = CL_D, ['L'] = CL_D,
    ['M'] = CL_D, ['N'] = CL_D, ['O'] = CL_D, ['P'] = CL_D, ['Q'] = CL_D, ['R'] = CL_D,
    ['S'] = CL_D, ['T'] = CL_D, ['U'] = CL_D, ['V'] = CL_D, ['W'] = CL_D, ['X'] = CL_D,
    ['Y'] = CL_D, ['Z'] = CL_D,
    ['a'] = CL_L, ['b'] = CL_L, ['c'] = CL_L, ['d'] = CL_L, ['e'] = CL_L, ['f'] = CL_L,
    ['g'] = CL_L, ['h'] = CL_L, ['i'] = CL_L, ['j'] = CL_L, ['k'] = CL_L, ['l'] = CL_L,
    ['m'] = CL_L, ['n'] = CL_L, ['o'] = CL_L, ['p'] = CL_L, ['q'] = CL_L, ['r'] = CL_L,
    ['s'] = CL_L, ['t'] = CL_L, ['u'] = CL_L, ['v'] = CL_L, ['w'] = CL_L, ['x'] = CL_L,
    ['y'] = CL_L, ['z'] = CL_L,
    ['_'] = CL_WORD | CL_B64URL, ['-'] = CL_B64URL | CL_SLACK,
};
#undef CL_D
#undef CL_L

/* Literal-led token secrets: the prefix, then a body of class cls (a CL_*
 * bit) between min and max bytes (the whole body must end there: a longer
 * run is some other word); mixed asks for a digit and a letter in the body,
 * which keeps "sk-learn-and-friends" out. */
typedef struct tok_secret {
    uint8_t prefix, min;
    uint16_t max;
    uint8_t cls;
    bool mixed;
} tok_secret_t;

static const tok_secret_t tok_aws = {4, 16, 16, CL_UPDIG, false};
static const tok_secret_t tok_sk = {3, 20, 256, CL_B64URL, true};
static const tok_secret_t tok_gh = {4, 36, 251, CL_ALNUM, false};
static const tok_secret_t tok_ghpat = {11, 22, 244, CL_WORD, false};
static const tok_secret_t tok_slack = {5, 10, 250, CL_SLACK, true};

static int confirm_token(const tok_secret_t *k, const char *t, size_t len, size_t s, size_t *os,
                         size_t *oe)
{
    if (!word_start_ok(t, s)) return -1;
    size_t b = s + k->prefix, e = b;
    while (e < len && e - b <= k->max && (cls_tab[AT(e)] & k->cls)) e++;
    if (e - b < k->min || e - b > k->max) return -1;
    if (!word_end_ok(t, len, e)) return -1;
    if (k->mixed) {
        bool dig = false, alp = false;
        for (size_t i = b; i < e; i++) {
            dig |= is_digit(AT(i));
            alp |= is_alpha(AT(i));
        }
        if (!dig || !alp) return -1;
    }
    *os = s;
    *oe = e;
    return AL_ENT_SECRET;
}

/* A JWT: base64url header starting "eyJ" ('{"'), payload, signature (may be
 * empty for alg none), separated by dots. */
static int confirm_jwt(const char *t, size_t len, size_t s, size_t *os, size_t *oe)
{
    if (!word_start_ok(t, s) || (s > 0 && AT(s - 1) == '.')) return -1;
    size_t p = s;
    while (p < len && p - s < 8192 && is_b64url(AT(p))) p++;
    if (p - s < 10 || p >= len || AT(p) != '.') return -1;
    size_t q = ++p;
    while (p < len && p - q < 65536 && is_b64url(AT(p))) p++;
    if (p - q < 2 || p >= len || AT(p) != '.') return -1;
    q = ++p;
    while (p < len && p - q < 8192 && is_b64url(AT(p))) p++;
    if (p < len && (AT(p) == '.' || is_word(AT(p)))) return -1;
    *os = s;
    *oe = p;
    return AL_ENT_SECRET;
}

/* "-----BEGIN [TYPE ]PRIVATE KEY-----" up to the matching END line; a
 * truncated block covers the header and the base64 body after it. */
static int confirm_pem(const char *t, size_t len, size_t s, size_t *os, size_t *oe)
{
    static const char begin[] = "-----BEGIN ", tail[] = "PRIVATE KEY-----";
    size_t p = s + sizeof(begin) - 1;
    if (p > len || memcmp(t + s, begin, sizeof(begin) - 1) != 0) return -1;
    size_t q = p;
    while (q < len && q - p <= 40 && (is_upper(AT(q)) || is_digit(AT(q)) || AT(q) == ' ')) q++;
    /* The type words end right before "PRIVATE KEY-----". */
    size_t h = p;
    const char *m = memmem(t + p, q - p + 16 <= len - p ? q - p + 16 : len - p, tail,
                           sizeof(tail) - 1);
    if (!m) return -1;
    h = (size_t)(m - t) + sizeof(tail) - 1;
    size_t avail = len - h < AL_PEM_MAX ? len - h : AL_PEM_MAX;
    const char *end = memmem(t + h, avail, "-----END ", 9);
    size_t e;
    if (end) {
        size_t ep = (size_t)(end - t) + 9;
        const char *close = memmem(t + ep, len - ep < 64 ? len - ep : 64, tail, sizeof(tail) - 1);
        if (!close) return -1;
        e = (size_t)(close - t) + sizeof(tail) - 1;
    } else {
        e = h;
        while (e < len && e - h < AL_PEM_MAX &&
               (is_alnum(AT(e)) || AT(e) == '+' || AT(e) == '/' || AT(e) == '=' ||
                AT(e) == '\n' || AT(e) == '\r' || AT(e) == ' '))
            e++;
        while (e > h && (AT(e - 1) == ' ' || AT(e - 1) == '\n' || AT(e - 1) == '\r')) e--;
    }
    *os = s;
    *oe = e;
    return AL_ENT_SECRET;
}

/* --- numeric tokens --------------------------------------------------------- */

/* Bytes of a numeric token: NT_TOK for every one (digits, capitals, space,
 * '-', '.', '(', ')', '+'), NT_LEAD also for those an IBAN or a '+'/'('
 * phone starts with (capitals, '+', '('). */
enum { NT_TOK = 1, NT_LEAD = 2 };
#define NT_UP NT_TOK | NT_LEAD
static const uint8_t numtok_tab[256] = {
    [' '] = NT_TOK, ['-'] = NT_TOK, ['.'] = NT_TOK, [')'] = NT_TOK,
    ['('] = NT_TOK | NT_LEAD, ['+'] = NT_TOK | NT_LEAD,
    ['0'] = NT_TOK, ['1'] = NT_TOK, ['2'] = NT_TOK, ['3'] = NT_TOK, ['4'] = NT_TOK,
    ['5'] = NT_TOK, ['6'] = NT_TOK, ['7'] = NT_TOK, ['8'] = NT_TOK, ['9'] = NT_TOK,
    ['A'] = NT_UP, ['B'] = NT_UP, ['C'] = NT_UP, ['D'] = NT_UP, ['E'] = NT_UP, ['F'] = NT_UP,
    ['G'] = NT_UP, ['H'] = NT_UP, ['I'] = NT_UP, ['J'] = NT_UP, ['K'] = NT_UP, ['L'] = NT_UP,
    ['M'] = NT_UP, ['N'] = NT_UP, ['O'] = NT_UP, ['P'] = NT_UP, ['Q'] = NT_UP, ['R'] = NT_UP,
    ['S'] = NT_UP, ['T'] = NT_UP, ['U'] = NT_UP, ['V'] = NT_UP, ['W'] = NT_UP, ['X'] = NT_UP,
    ['Y'] = NT_UP, ['Z'] = NT_UP,
};
#undef NT_UP

/* The cheap answer for the numbers of ordinary prose, before any grammar:
 * true when no entity can cover ld.  Called only when [l, ld] holds no capital
 * letter, '+' or '(' (where IBANs and international or area-coded phones
 * start); then every grammar reads only digits, separators and
 * parentheses forward, at most 48 bytes past ld, and needs seven digits
 * (cards, SSNs, phones) or three dots (IPv4).  A lone date (2024-01-15,
 * 15.01.2024: three groups 4-2-2 or 2-2-4, one separator) has eight digits
 * but no grammar takes it: the phone grammar refuses dates, the card one
 * wants twelve digits, the SSN one a first group of three, and no entity
 * starts after a separator glued to a digit. */
static bool plain_number(const char *t, size_t len, size_t l, size_t ld)
{
    unsigned digits = 0, dots = 0;
    size_t i = l, lim = ld + 64 < len ? ld + 64 : len, first = len;
    for (; i < lim; i++) {
        unsigned char c = AT(i);
        if (is_digit(c)) {
            if (first == len) first = i;
            if (++digits > 8) return false;   /* enough for a card, an SSN, a phone */
        } else if (c == '.') {
            dots++;
        } else if (!(c == ' ' || c == '-' || c == '(' || c == ')')) {
            break;
        }
    }
    if (digits < 7 && dots < 3) return true;
    if (digits != 8 || first == len) return false;
    /* Exactly "dddd-dd-dd" or "dd-dd-dddd" (or dotted) and no other digit. */
    size_t p = first, g[3];
    unsigned char sep = 0;
    for (int k = 0; k < 3; k++) {
        size_t q = p;
        while (q < i && is_digit(AT(q))) q++;
        g[k] = q - p;
        if (k < 2) {
            if (q >= i || (AT(q) != '-' && AT(q) != '.') || (sep && AT(q) != sep)) return false;
            sep = AT(q);
            q++;
        }
        p = q;
    }
    /* The three groups hold all eight digits, so none follows. */
    return g[0] + g[1] + g[2] == 8 &&
           ((g[0] == 4 && g[1] == 2 && g[2] == 2) || (g[0] == 2 && g[1] == 2 && g[2] == 4));
}

/* A K_NUM match ends just after the digit at ld.  Walks left to the start
 * of the token around it and tries each place an entity may start, leftmost
 * first, with every numeric grammar; the first entity covering ld wins.
 *
 * floor: starts before it are known to cover no later digit (the engine's
 * contract, 0 when unknown).  What a start yields depends on the start
 * alone, never on ld, and a start refused for ld (no entity, or one ending
 * at or before ld: every grammar's span begins at its start) is refused for
 * any later ld too.  So the engine, whose reports come in text order, hands
 * back what the previous report learned and each start of a long digit run
 * is parsed about once, instead of once per group within 48 bytes of it
 * ("1 1 1 ...", "12 34 12 34 ..." cost ~1 s per MB that way).  On failure
 * *os is the floor for the next report (ld + 1 when every start up to ld
 * was refused, else floor unchanged) and *oe is 0. */
static int confirm_num(const char *t, size_t len, size_t to, size_t floor, size_t *os,
                       size_t *oe)
{
    *os = floor;
    *oe = 0;
    if (to == 0) return -1;
    size_t ld = to - 1;
    if (!is_digit(AT(ld))) {
        if (ld == 0) return -1;
        ld--;
    }
    if (!is_digit(AT(ld))) return -1;
    if (floor > ld) return -1;   /* every start up to ld was refused already */
    /* With a floor less than 48 bytes back and only token bytes from it to
     * ld, the walk below would pass the floor, so the search starts there;
     * plain_number is skipped too, as it only foresees the search's
     * answer. */
    size_t l = ld;
    bool from_floor = false;
    if (floor > 0 && ld - floor < 48) {
        size_t i = floor;
        while (i < ld && numtok_tab[AT(i)]) i++;
        from_floor = i == ld;
    }
    if (from_floor) {
        l = floor;
    } else {
        unsigned lead = 0;
        while (l > 0 && ld - l < 48) {
            unsigned k = numtok_tab[AT(l - 1)];
            if (!k) break;
            lead |= k;
            l--;
        }
        if (!(lead & NT_LEAD) && plain_number(t, len, l, ld)) return -1;
    }
    for (size_t p = l > floor ? l : floor; p <= ld; p++) {
        unsigned char c = AT(p);
        if (p > 0 && is_alnum(AT(p - 1))) continue;
        size_t s = 0, e = 0;
        int ent = -1;
        if (is_upper(c)) {
            ent = confirm_iban(t, len, p, &s, &e);
        } else if (c == '+' || c == '(') {
            ent = confirm_phone(t, len, p, &s, &e);
        } else if (is_digit(c)) {
            /* The separator after the first group picks the grammars. */
            size_t q = p;
            while (q < len && q - p < 4 && is_digit(AT(q))) q++;
            unsigned char sepc = q < len ? AT(q) : 0;
            if (sepc == '.') ent = confirm_ipv4(t, len, p, &s, &e);
            if (ent < 0 && q - p == 3 && (sepc == '-' || sepc == ' '))
                ent = confirm_ssn(t, len, p, &s, &e);
            if (ent < 0 && sepc != '.') ent = confirm_card(t, len, p, &s, &e);
            if (ent < 0) ent = confirm_phone(t, len, p, &s, &e);
        }
        if (ent >= 0 && s <= ld && ld < e) {
            *os = s;
            *oe = e;
            return ent;
        }
    }
    if (ld + 1 > floor) *os = ld + 1;
    return -1;
}

/* --- dispatch -------------------------------------------------------------- */

int al_pii_confirm(unsigned id, const char *text, size_t len, size_t from, size_t to, size_t *s,
                   size_t *e)
{
    const char *t = text;
    if (id >= sizeof(pat_kind) || !text || to > len || from > to) return -1;
    switch (pat_kind[id]) {
    case K_EMAIL: return confirm_email(t, len, to, s, e);
    case K_NUM:
        /* The engine's report at the first digit of a run led by '(' or '+'
         * comes with from = that digit: a phone starts at the lead. */
        if (from > 0 && from + 1 == to && (AT(from - 1) == '(' || AT(from - 1) == '+'))
            return confirm_phone(t, len, from - 1, s, e);
        /* Otherwise from is the floor of confirm_num. */
        return confirm_num(t, len, to, from, s, e);
    case K_IPV6: return confirm_ipv6(t, len, to, s, e);
    default: break;
    }
    /* The rest are literals: the match is [to - strlen(expr), to). */
    size_t n = pat_len[id];
    if (to < n) return -1;
    size_t st = to - n;
    switch (pat_kind[id]) {
    case K_AWS: return confirm_token(&tok_aws, t, len, st, s, e);
    case K_SK: return confirm_token(&tok_sk, t, len, st, s, e);
    case K_GH: return confirm_token(&tok_gh, t, len, st, s, e);
    case K_GHPAT: return confirm_token(&tok_ghpat, t, len, st, s, e);
    case K_SLACK: return confirm_token(&tok_slack, t, len, st, s, e);
    case K_JWT: return confirm_jwt(t, len, st, s, e);
    case K_PEM: return confirm_pem(t, len, st, s, e);
    default: break;
    }
    return -1;
}
