/* redact.c - the guardrails' JSON walkers, placeholder map and stream
 * hold-back (redact.h).
 *
 * Bodies are never rebuilt from a tree: a small strict JSON cursor walks the
 * raw bytes (validating all of it), decodes only the strings that a model
 * reads or writes (keys are decoded too, so "\u0063ontent" is still
 * "content"), and every text whose rewrite differs becomes an edit, a byte
 * range of the original replaced by a freshly encoded JSON string.  The
 * output is the original with the edits spliced in, so numbers, key order,
 * whitespace and duplicate keys stay as they were; raw bytes copied through
 * have invalid UTF-8 replaced by U+FFFD, so the result is valid UTF-8.
 * Texts go through the policy's hooks: scan -> findings, decide -> which to
 * redact (or block), al_redact_text -> placeholders "[NAME_N]" (and restored
 * values), released -> the final text.  The map numbers values per entity in
 * order of first appearance, keyed by (entity, value), capped in values and
 * bytes: past the cap a value still gets a fresh number but cannot be
 * restored.  On streams each choice's content and each tool call's arguments
 * own a slot with a tail: a delta is appended to the tail, the window is
 * scanned, and only the suffix that could still be (part of) an entity or a
 * placeholder is held back - after the last hard break, from an unclosed
 * '[', from an open PEM block - bounded by the window; the rest is rewritten
 * and put back into the chunk in place of the delta. */
#include "guard/redact.h"

#include <stdlib.h>
#include <string.h>

#define MAP_MAX_VALUES 4096
#define MAP_MAX_BYTES (1u << 20)
#define MAP_HASH 8192               /* slots per hash table, > 2 * MAP_MAX_VALUES */
#define PH_MAX 40                   /* longest placeholder, '[' to ']' inclusive */
#define PEM_MAX 8192                /* longest PEM block held back */
#define MAX_DEPTH 256               /* JSON nesting accepted */
#define KEY_MAX 64                  /* keys longer than this match nothing */
#define STREAM_OUT_MAX (16u << 20)  /* one emitted chunk */
#define STREAM_MAX_SLOTS 256        /* texts per stream (choices x tool calls) */
#define WINDOW_MIN 64
#define WINDOW_MAX 65536

/* --- placeholder map ----------------------------------------------------- */

typedef struct ment {
    uint32_t off, len;   /* value in m->vals */
    uint32_t num;        /* placeholder number */
    uint16_t ent;
} ment_t;

struct al_redact_map {
    const al_scanner_t *sc;
    size_t n_ent;
    uint32_t *next;      /* per entity: last number given; [n_ent] for unknown ids */
    ment_t *ents;
    size_t n;
    int32_t *by_val;     /* hash of (entity, value) -> entry */
    int32_t *by_num;     /* hash of (entity, number) -> entry */
    uint32_t hmask;      /* hash slots - 1: grows from 64 up to MAP_HASH, load <= 1/2 */
    al_buf_t vals;
};

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t hash_val(unsigned ent, const char *v, size_t len)
{
    uint16_t e = (uint16_t)ent;
    return fnv(fnv(2166136261u, &e, sizeof e), v, len);
}

static uint32_t hash_num(unsigned ent, uint32_t num)
{
    uint16_t e = (uint16_t)ent;
    return fnv(fnv(2166136261u, &e, sizeof e), &num, sizeof num);
}

static const char *ent_name(const al_redact_map_t *m, unsigned ent)
{
    const char *s = NULL;
    if (ent < m->n_ent) s = m->sc ? al_scanner_entity_name(m->sc, ent) : al_pii_entity_name(ent);
    else if (ent == 0xffff) s = "SYSTEM_PROMPT"; /* a leaked span of the system prompt */
    return s && *s ? s : "PII";
}

al_redact_map_t *al_redact_map_new(const al_scanner_t *sc)
{
    al_redact_map_t *m = al_calloc(1, sizeof *m);
    m->sc = sc;
    m->n_ent = sc ? al_scanner_n_entities(sc) : AL_ENT_CUSTOM;
    if (m->n_ent > UINT16_MAX) m->n_ent = UINT16_MAX;
    m->next = al_calloc(m->n_ent + 1, sizeof *m->next);
    al_buf_init(&m->vals, MAP_MAX_BYTES);
    return m;
}

void al_redact_map_free(al_redact_map_t *m)
{
    if (!m) return;
    free(m->next);
    free(m->ents);
    free(m->by_val);
    free(m->by_num);
    al_buf_free(&m->vals);
    free(m);
}

size_t al_redact_map_count(const al_redact_map_t *m)
{
    return m ? m->n : 0;
}

static int32_t map_find_val(const al_redact_map_t *m, unsigned ent, const char *v, size_t len)
{
    if (!m->by_val) return -1;
    for (uint32_t h = hash_val(ent, v, len) & m->hmask;; h = (h + 1) & m->hmask) {
        int32_t k = m->by_val[h];
        if (k < 0) return -1;
        const ment_t *e = &m->ents[k];
        if (e->ent == ent && e->len == len && memcmp(m->vals.p + e->off, v, len) == 0) return k;
    }
}

static int32_t map_find_num(const al_redact_map_t *m, unsigned ent, uint32_t num)
{
    if (!m->by_num) return -1;
    for (uint32_t h = hash_num(ent, num) & m->hmask;; h = (h + 1) & m->hmask) {
        int32_t k = m->by_num[h];
        if (k < 0) return -1;
        if (m->ents[k].ent == ent && m->ents[k].num == num) return k;
    }
}

/* Size the tables for `slots` hash slots (a power of two, <= MAP_HASH) and
 * index every entry again.  Most requests hold a handful of values, so the
 * tables start small instead of at their caps. */
static void map_resize(al_redact_map_t *m, uint32_t slots)
{
    m->ents = al_realloc(m->ents, (slots / 2) * sizeof *m->ents);
    free(m->by_val);
    free(m->by_num);
    m->by_val = al_malloc(slots * sizeof *m->by_val);
    m->by_num = al_malloc(slots * sizeof *m->by_num);
    memset(m->by_val, 0xff, slots * sizeof *m->by_val);
    memset(m->by_num, 0xff, slots * sizeof *m->by_num);
    m->hmask = slots - 1;
    for (size_t k = 0; k < m->n; k++) {
        const ment_t *e = &m->ents[k];
        uint32_t h = hash_val(e->ent, m->vals.p + e->off, e->len) & m->hmask;
        while (m->by_val[h] >= 0) h = (h + 1) & m->hmask;
        m->by_val[h] = (int32_t)k;
        h = hash_num(e->ent, e->num) & m->hmask;
        while (m->by_num[h] >= 0) h = (h + 1) & m->hmask;
        m->by_num[h] = (int32_t)k;
    }
}

static void map_insert(al_redact_map_t *m, unsigned ent, uint32_t num, const char *v, size_t len)
{
    if (!m->by_val) map_resize(m, 64);
    else if ((m->n + 1) * 2 > (size_t)m->hmask + 1 && m->hmask + 1 < MAP_HASH)
        map_resize(m, (m->hmask + 1) * 2);
    int32_t k = (int32_t)m->n;
    uint32_t off = (uint32_t)m->vals.len;
    if (al_buf_append(&m->vals, v, len) != AL_OK) return;
    m->ents[k] = (ment_t){.off = off, .len = (uint32_t)len, .num = num, .ent = (uint16_t)ent};
    m->n++;
    uint32_t h = hash_val(ent, v, len) & m->hmask;
    while (m->by_val[h] >= 0) h = (h + 1) & m->hmask;
    m->by_val[h] = k;
    h = hash_num(ent, num) & m->hmask;
    while (m->by_num[h] >= 0) h = (h + 1) & m->hmask;
    m->by_num[h] = k;
}

/* The placeholder number of a value: known, new and stored, or (past the
 * caps) new and not stored. */
static uint32_t map_number(al_redact_map_t *m, unsigned ent, const char *v, size_t len)
{
    int32_t k = map_find_val(m, ent, v, len);
    if (k >= 0) return m->ents[k].num;
    uint32_t *ctr = &m->next[ent < m->n_ent ? ent : m->n_ent];
    if (*ctr < UINT32_MAX) (*ctr)++;
    if (ent < m->n_ent && m->n < MAP_MAX_VALUES && len <= MAP_MAX_BYTES - m->vals.len)
        map_insert(m, ent, *ctr, v, len);
    return *ctr;
}

static bool ph_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A placeholder of m at t[0] ('['): its entry and length, or -1. */
static int32_t map_placeholder(const al_redact_map_t *m, const char *t, size_t len, size_t *plen)
{
    size_t j = 1, us = 0;
    if (!m->n) return -1;
    while (j < len && j < PH_MAX && ph_char((unsigned char)t[j])) {
        if (t[j] == '_') us = j;
        j++;
    }
    if (j >= len || t[j] != ']' || us < 2 || us + 1 >= j || t[us + 1] == '0' || j - us - 1 > 9)
        return -1;
    uint64_t num = 0;
    for (size_t i = us + 1; i < j; i++) {
        if (t[i] < '0' || t[i] > '9') return -1;
        num = num * 10 + (uint64_t)(t[i] - '0');
    }
    size_t nl = us - 1;
    for (size_t e = 0; e < m->n_ent; e++) {
        const char *name = ent_name(m, (unsigned)e);
        if (strlen(name) == nl && memcmp(name, t + 1, nl) == 0) {
            int32_t k = map_find_num(m, (unsigned)e, (uint32_t)num);
            if (k >= 0) *plen = j + 1;
            return k;
        }
    }
    return -1;
}

/* A restored value inside tool call arguments (JSON text): escaped so the
 * arguments stay valid JSON whatever the value holds (a PEM block's
 * newlines, quotes). */
static void put_escaped(al_buf_t *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            al_buf_putc(out, '\\');
            al_buf_putc(out, (char)c);
        } else if (c < 0x20) {
            al_buf_printf(out, "\\u%04x", c);
        } else {
            al_buf_putc(out, (char)c);
        }
    }
}

/* Plain text between findings; with restore, known placeholders become
 * their values (escaped for JSON when esc). */
static void put_gap(al_redact_map_t *m, const char *t, size_t len, bool restore, bool esc,
                    al_buf_t *out)
{
    size_t pos = 0;
    while (restore && pos < len) {
        const char *b = memchr(t + pos, '[', len - pos);
        if (!b) break;
        size_t at = (size_t)(b - t), plen = 0;
        int32_t k = map_placeholder(m, b, len - at, &plen);
        if (k < 0) {
            al_buf_append(out, t + pos, at + 1 - pos);
            pos = at + 1;
            continue;
        }
        al_buf_append(out, t + pos, at - pos);
        if (esc) put_escaped(out, m->vals.p + m->ents[k].off, m->ents[k].len);
        else al_buf_append(out, m->vals.p + m->ents[k].off, m->ents[k].len);
        pos = at + plen;
    }
    al_buf_append(out, t + pos, len - pos);
}

static int redact_text(al_redact_map_t *m, const char *text, size_t len, const al_find_t *f,
                       const bool *redact, size_t n, bool restore, bool esc, al_buf_t *out)
{
    size_t pos = 0;
    for (size_t i = 0; redact && i < n; i++) {
        size_t s = f[i].start, e = f[i].end;
        if (!redact[i] || s < pos || e <= s || e > len) continue;
        put_gap(m, text + pos, s - pos, restore, esc, out);
        al_buf_printf(out, "[%s_%u]", ent_name(m, f[i].entity),
                      (unsigned)map_number(m, f[i].entity, text + s, e - s));
        pos = e;
    }
    put_gap(m, text + pos, len - pos, restore, esc, out);
    return out->err;
}

int al_redact_text(al_redact_map_t *m, const char *text, size_t len, const al_find_t *f,
                   const bool *redact, size_t n, bool restore, al_buf_t *out)
{
    return redact_text(m, text, len, f, redact, n, restore, false, out);
}

/* --- UTF-8 ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t u8len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) return 0;
        return 4;
    }
    return 0;
}

/* Append raw bytes with every invalid UTF-8 byte replaced by U+FFFD. */
static void put_fixed(al_buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            run++;
            continue;
        }
        size_t l = u8len(p + i, n - i);
        if (l) {
            i += l;
            run += l;
            continue;
        }
        al_buf_append(b, s + i - run, run);
        al_buf_append(b, "\xEF\xBF\xBD", 3);
        run = 0;
        i++;
    }
    al_buf_append(b, s + i - run, run);
}

static void put_utf8(al_buf_t *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        al_buf_append(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        al_buf_append(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        al_buf_append(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        al_buf_append(b, u, 4);
    }
}

/* --- strict JSON cursor ------------------------------------------------------ */

typedef struct jp {
    const char *s;
    size_t n, i;
    unsigned depth;
} jp_t;

static void jws(jp_t *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

/* The byte at the cursor after whitespace, or 0 at the end. */
static char jpeek(jp_t *p)
{
    jws(p);
    return p->i < p->n ? p->s[p->i] : 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(const jp_t *p, size_t at, uint32_t *v)
{
    uint32_t x = 0;
    if (at + 4 > p->n) return false;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(p->s[at + k]);
        if (h < 0) return false;
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return true;
}

/* A string at the cursor ('"'); decoded into dec when not NULL (raw bytes
 * kept as they are, lone surrogates as U+FFFD).  Only syntax errors are
 * returned; dec's own error is the caller's to check. */
/* Eight bytes without '"', '\\' or a control byte (word at a time). */
static bool plain8(const char *q)
{
    uint64_t x;
    memcpy(&x, q, 8);
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t q1 = x ^ (ones * '"'), q2 = x ^ (ones * '\\');
    uint64_t hit = ((q1 - ones) & ~q1) | ((q2 - ones) & ~q2) | ((x - ones * 0x20) & ~x);
    return (hit & high) == 0;
}

static int jstr(jp_t *p, al_buf_t *dec)
{
    size_t i = p->i + 1;
    for (;;) {
        size_t run = i;
        while (i + 8 <= p->n && plain8(p->s + i)) i += 8;
        while (i < p->n) {
            unsigned char c = (unsigned char)p->s[i];
            if (c == '"' || c == '\\' || c < 0x20) break;
            i++;
        }
        if (dec && i > run) al_buf_append(dec, p->s + run, i - run);
        if (i >= p->n || (unsigned char)p->s[i] < 0x20) return AL_EPARSE;
        if (p->s[i] == '"') break;
        if (i + 1 >= p->n) return AL_EPARSE;
        char e = p->s[i + 1], c = 0;
        i += 2;
        switch (e) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (!hex4(p, i, &cp)) return AL_EPARSE;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < p->n && p->s[i] == '\\' &&
                p->s[i + 1] == 'u' && hex4(p, i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            if (dec) put_utf8(dec, cp);
            continue;
        }
        default: return AL_EPARSE;
        }
        if (dec) al_buf_append(dec, &c, 1);
    }
    p->i = i + 1;
    return AL_OK;
}

static int jnum(jp_t *p)
{
    size_t i = p->i;
    const char *s = p->s;
    if (i < p->n && s[i] == '-') i++;
    if (i >= p->n) return AL_EPARSE;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return AL_EPARSE;
    }
    if (i < p->n && s[i] == '.') {
        size_t d = ++i;
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return AL_EPARSE;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return AL_EPARSE;
    }
    p->i = i;
    return AL_OK;
}

/* Only whitespace left. */
static bool jend(jp_t *p)
{
    jws(p);
    return p->i == p->n;
}

static int jskip(jp_t *p);

/* The whole text is one JSON value. */
static bool jvalid(const char *s, size_t n)
{
    jp_t p = {.s = s, .n = n};
    return jskip(&p) == AL_OK && jend(&p);
}

static int jlit(jp_t *p, const char *lit, size_t len)
{
    if (p->n - p->i < len || memcmp(p->s + p->i, lit, len) != 0) return AL_EPARSE;
    p->i += len;
    return AL_OK;
}

/* Container helpers: *_open consumes the bracket (*more: not empty), *_next
 * consumes a ',' (*more) or the closing bracket. */
static int jopen(jp_t *p, char open, char close, bool *more)
{
    if (jpeek(p) != open) return AL_EPARSE;
    if (++p->depth > MAX_DEPTH) return AL_EPARSE;
    p->i++;
    *more = jpeek(p) != close;
    if (!*more) {
        p->i++;
        p->depth--;
    }
    return AL_OK;
}

static int jnext(jp_t *p, char close, bool *more)
{
    char c = jpeek(p);
    if (c == ',') {
        p->i++;
        *more = true;
        if (close == '}' && jpeek(p) != '"') return AL_EPARSE;
        return AL_OK;
    }
    if (c != close) return AL_EPARSE;
    p->i++;
    p->depth--;
    *more = false;
    return AL_OK;
}

/* A member's key (decoded, ASCII-compared by the caller), then the ':'. */
typedef struct jkey {
    char s[KEY_MAX + 1];
    size_t len;
    bool ok;    /* fit */
} jkey_t;

static int jkey(jp_t *p, jkey_t *k)
{
    al_buf_t b;
    int rc;
    if (jpeek(p) != '"') return AL_EPARSE;
    al_buf_init(&b, KEY_MAX);
    rc = jstr(p, &b);
    k->ok = rc == AL_OK && b.err == 0;
    k->len = k->ok ? b.len : 0;
    if (k->len) memcpy(k->s, b.p, k->len);
    k->s[k->len] = '\0';
    al_buf_free(&b);
    if (rc != AL_OK) return rc;
    if (jpeek(p) != ':') return AL_EPARSE;
    p->i++;
    jws(p);
    return AL_OK;
}

static bool key_is(const jkey_t *k, const char *name)
{
    return k->ok && strcmp(k->s, name) == 0;
}

static int jskip(jp_t *p)
{
    bool more;
    int rc;
    switch (jpeek(p)) {
    case '"': return jstr(p, NULL);
    case '{':
        if ((rc = jopen(p, '{', '}', &more)) != AL_OK) return rc;
        while (more) {
            jkey_t k;
            if ((rc = jkey(p, &k)) != AL_OK || (rc = jskip(p)) != AL_OK ||
                (rc = jnext(p, '}', &more)) != AL_OK)
                return rc;
        }
        return AL_OK;
    case '[':
        if ((rc = jopen(p, '[', ']', &more)) != AL_OK) return rc;
        while (more)
            if ((rc = jskip(p)) != AL_OK || (rc = jnext(p, ']', &more)) != AL_OK) return rc;
        return AL_OK;
    case 't': return jlit(p, "true", 4);
    case 'f': return jlit(p, "false", 5);
    case 'n': return jlit(p, "null", 4);
    case 0: return AL_EPARSE;
    default: return jnum(p);
    }
}

/* Skip a value; *nonnull tells whether it was anything but null. */
static int jskip_note(jp_t *p, bool *nonnull)
{
    if (jpeek(p) != 'n') *nonnull = true;
    return jskip(p);
}

/* A non-negative integer value of at most 9 digits, else -1 (skipped). */
static int jindex(jp_t *p, long *out)
{
    size_t at;
    int rc;
    jws(p);
    at = p->i;
    if ((rc = jskip(p)) != AL_OK) return rc;
    *out = -1;
    if (p->i - at > 9) return AL_OK;
    long v = 0;
    for (size_t i = at; i < p->i; i++) {
        if (p->s[i] < '0' || p->s[i] > '9') return AL_OK;
        v = v * 10 + (p->s[i] - '0');
    }
    *out = v;
    return AL_OK;
}

/* --- walker: edits over the raw body ---------------------------------------- */

typedef struct edit {
    size_t start, end;   /* raw range replaced (start == end: insertion) */
    size_t roff, rlen;   /* replacement in w->reps */
} edit_t;

typedef struct walk {
    jp_t p;
    edit_t *ed;
    size_t ned, edcap;
    al_buf_t reps;       /* replacement bytes of every edit */
    al_buf_t dec;        /* a decoded text */
    al_buf_t txt;        /* a rewritten text */
    al_find_t *fc;       /* findings copied from the scan hook */
    bool *rd;            /* decide flags */
    size_t fcap;
    al_redact_map_t *m;
    const al_guard_hooks_t *h;
    void *ud;
    bool restore;
    bool changed;
} walk_t;

static void walk_init(walk_t *w, al_redact_map_t *m, const al_guard_hooks_t *h, void *ud,
                      bool restore, size_t max)
{
    memset(w, 0, sizeof *w);
    al_buf_init(&w->reps, max);
    al_buf_init(&w->dec, max);
    al_buf_init(&w->txt, max);
    w->m = m;
    w->h = h;
    w->ud = ud;
    w->restore = restore;
}

static void walk_reset(walk_t *w, const char *s, size_t n)
{
    w->p = (jp_t){.s = s, .n = n};
    w->ned = 0;
    w->changed = false;
    al_buf_reset(&w->reps);
}

static void walk_free(walk_t *w)
{
    free(w->ed);
    free(w->fc);
    free(w->rd);
    al_buf_free(&w->reps);
    al_buf_free(&w->dec);
    al_buf_free(&w->txt);
}

/* Begin an edit of [start, end); its replacement is what is appended to
 * w->reps until the next edit. */
static void edit_begin(walk_t *w, size_t start, size_t end)
{
    if (w->ned == w->edcap) {
        w->edcap = w->edcap ? w->edcap * 2 : 16;
        w->ed = al_realloc(w->ed, w->edcap * sizeof *w->ed);
    }
    w->ed[w->ned++] = (edit_t){.start = start, .end = end, .roff = w->reps.len};
}

static void edit_end(walk_t *w)
{
    edit_t *e = &w->ed[w->ned - 1];
    e->rlen = w->reps.len - e->roff;
}

/* Append the body with the edits spliced in (edits sorted by start, stably). */
static int splice(walk_t *w, al_buf_t *out)
{
    const char *s = w->p.s;
    size_t pos = 0;
    for (size_t i = 1; i < w->ned; i++) {
        edit_t e = w->ed[i];
        size_t j = i;
        while (j > 0 && w->ed[j - 1].start > e.start) {
            w->ed[j] = w->ed[j - 1];
            j--;
        }
        w->ed[j] = e;
    }
    if (w->reps.err) return w->reps.err;
    for (size_t i = 0; i < w->ned; i++) {
        const edit_t *e = &w->ed[i];
        if (e->start < pos) return AL_EINVAL;   /* cannot happen: edits never overlap */
        put_fixed(out, s + pos, e->start - pos);
        al_buf_append(out, w->reps.p + e->roff, e->rlen);
        pos = e->end;
    }
    put_fixed(out, s + pos, w->p.n - pos);
    return out->err;
}

/* Scan a text; on success w->fc[0..*n) holds a private copy of the findings. */
static int do_scan(walk_t *w, al_text_role_t role, const char *t, size_t len, size_t *n)
{
    const al_find_t *f = NULL;
    size_t k = 0;
    int rc;
    *n = 0;
    if (!w->h || !w->h->scan) return AL_OK;
    rc = w->h->scan(w->ud, role, t, len, &f, &k);
    if (rc != AL_OK) return rc;
    if (!f) k = 0;
    if (k > w->fcap) {
        w->fcap = k;
        w->fc = al_realloc(w->fc, k * sizeof *w->fc);
        w->rd = al_realloc(w->rd, k * sizeof *w->rd);
    }
    if (k) memcpy(w->fc, f, k * sizeof *f);
    *n = k;
    return AL_OK;
}

/* Decide on w->fc[0..n) and rewrite t into w->txt.  *same: nothing changed. */
static int decide_rewrite(walk_t *w, al_text_role_t role, const char *t, size_t len, size_t n,
                          bool *same)
{
    bool any = false;
    int rc;
    al_buf_reset(&w->txt);
    for (size_t i = 0; i < n; i++) w->rd[i] = false;
    if (n && w->h && w->h->decide) {
        rc = w->h->decide(w->ud, role, w->fc, n, w->rd);
        if (rc != AL_OK) return rc;
        for (size_t i = 0; i < n; i++) any |= w->rd[i];
    }
    if (!any && (!w->restore || !memchr(t, '[', len))) {
        *same = true;
        return al_buf_append(&w->txt, t, len);
    }
    rc = redact_text(w->m, t, len, w->fc, w->rd, n, w->restore,
                     role == AL_TR_TOOL_ARGS || role == AL_TR_OUT_TOOL_ARGS, &w->txt);
    if (rc != AL_OK) return rc;
    *same = w->txt.len == len && (len == 0 || memcmp(w->txt.p, t, len) == 0);
    return AL_OK;
}

static void released(walk_t *w, al_text_role_t role, const char *t, size_t len)
{
    if (w->h && w->h->released) w->h->released(w->ud, role, t, len);
}

/* A whole text (request or response) at the cursor: scanned, decided,
 * rewritten, and edited in when it changed.  Non-strings are skipped. */
static int whole_text(walk_t *w, al_text_role_t role)
{
    size_t start, n;
    bool same;
    int rc;
    if (jpeek(&w->p) != '"') return jskip(&w->p);
    start = w->p.i;
    al_buf_reset(&w->dec);
    if ((rc = jstr(&w->p, &w->dec)) != AL_OK) return rc;
    if (w->dec.err) return w->dec.err;
    const char *t = w->dec.p ? w->dec.p : "";
    if ((rc = do_scan(w, role, t, w->dec.len, &n)) != AL_OK) return rc;
    if ((rc = decide_rewrite(w, role, t, w->dec.len, n, &same)) != AL_OK) return rc;
    released(w, role, w->txt.p ? w->txt.p : "", w->txt.len);
    if (!same) {
        edit_begin(w, start, w->p.i);
        al_buf_json_str(&w->reps, w->txt.p, w->txt.len);
        edit_end(w);
        w->changed = true;
    }
    return w->reps.err;
}

/* Iterate an object's members: for each, cb(w, key, arg) with the cursor on
 * the value; cb must consume the value. */
typedef int (*member_cb)(walk_t *w, const jkey_t *k, void *arg);

static int each_member(walk_t *w, member_cb cb, void *arg)
{
    bool more;
    int rc;
    if (jpeek(&w->p) != '{') return jskip(&w->p);
    if ((rc = jopen(&w->p, '{', '}', &more)) != AL_OK) return rc;
    while (more) {
        jkey_t k;
        if ((rc = jkey(&w->p, &k)) != AL_OK || (rc = cb(w, &k, arg)) != AL_OK ||
            (rc = jnext(&w->p, '}', &more)) != AL_OK)
            return rc;
    }
    return AL_OK;
}

/* Each element of an array through cb(w, ordinal, arg); non-arrays skipped. */
typedef int (*elem_cb)(walk_t *w, size_t ord, void *arg);

static int each_elem(walk_t *w, elem_cb cb, void *arg)
{
    bool more;
    int rc;
    size_t ord = 0;
    if (jpeek(&w->p) != '[') return jskip(&w->p);
    if ((rc = jopen(&w->p, '[', ']', &more)) != AL_OK) return rc;
    while (more) {
        if ((rc = cb(w, ord++, arg)) != AL_OK || (rc = jnext(&w->p, ']', &more)) != AL_OK)
            return rc;
    }
    return AL_OK;
}

/* --- requests and responses ----------------------------------------------------- */

/* function / function_call objects: their "arguments". */
static int m_args(walk_t *w, const jkey_t *k, void *arg)
{
    if (key_is(k, "arguments")) return whole_text(w, *(al_text_role_t *)arg);
    return jskip(&w->p);
}

/* tool_calls[] elements: function.arguments. */
static int m_toolcall(walk_t *w, const jkey_t *k, void *arg)
{
    if (key_is(k, "function")) return each_member(w, m_args, arg);
    return jskip(&w->p);
}

static int e_toolcall(walk_t *w, size_t ord, void *arg)
{
    AL_UNUSED(ord);
    return each_member(w, m_toolcall, arg);
}

/* Content parts: every "text" (and an assistant's "refusal"); image, audio
 * and file parts have neither. */
static int m_part(walk_t *w, const jkey_t *k, void *arg)
{
    if (key_is(k, "text") || key_is(k, "refusal")) return whole_text(w, *(al_text_role_t *)arg);
    return jskip(&w->p);
}

static int e_part(walk_t *w, size_t ord, void *arg)
{
    AL_UNUSED(ord);
    return each_member(w, m_part, arg);
}

static int content(walk_t *w, al_text_role_t role)
{
    char c = jpeek(&w->p);
    if (c == '"') return whole_text(w, role);
    if (c == '[') return each_elem(w, e_part, &role);
    return jskip(&w->p);
}

/* First pass over a message: its role. */
static int m_role(walk_t *w, const jkey_t *k, void *arg)
{
    al_text_role_t *role = arg;
    if (!key_is(k, "role") || jpeek(&w->p) != '"') return jskip(&w->p);
    jkey_t v;
    al_buf_t b;
    int rc;
    al_buf_init(&b, KEY_MAX);
    rc = jstr(&w->p, &b);
    v.ok = rc == AL_OK && b.err == 0 && b.p;
    if (v.ok) {
        memcpy(v.s, b.p, b.len + 1);
        if (key_is(&v, "system") || key_is(&v, "developer")) *role = AL_TR_SYSTEM;
        else if (key_is(&v, "assistant")) *role = AL_TR_ASSISTANT;
        else if (key_is(&v, "tool") || key_is(&v, "function")) *role = AL_TR_TOOL_RESULT;
        else *role = AL_TR_USER;
    }
    al_buf_free(&b);
    return rc;
}

static int m_message(walk_t *w, const jkey_t *k, void *arg)
{
    al_text_role_t role = *(al_text_role_t *)arg, args = AL_TR_TOOL_ARGS;
    if (key_is(k, "content")) return content(w, role);
    if (key_is(k, "tool_calls")) return each_elem(w, e_toolcall, &args);
    if (key_is(k, "function_call")) return each_member(w, m_args, &args);
    return jskip(&w->p);
}

static int e_message(walk_t *w, size_t ord, void *arg)
{
    al_text_role_t role = AL_TR_USER;
    size_t at;
    unsigned depth = w->p.depth;
    int rc;
    AL_UNUSED(ord);
    AL_UNUSED(arg);
    if (jpeek(&w->p) != '{') return jskip(&w->p);
    at = w->p.i;
    /* the role may come after the content: read it first, then walk again */
    if ((rc = each_member(w, m_role, &role)) != AL_OK) return rc;
    w->p.i = at;
    w->p.depth = depth;
    return each_member(w, m_message, &role);
}

static int e_embed(walk_t *w, size_t ord, void *arg)
{
    AL_UNUSED(ord);
    AL_UNUSED(arg);
    return whole_text(w, AL_TR_EMBED);
}

static int m_request(walk_t *w, const jkey_t *k, void *arg)
{
    al_walk_kind_t kind = *(al_walk_kind_t *)arg;
    if (kind == AL_WALK_CHAT && key_is(k, "messages")) return each_elem(w, e_message, NULL);
    if (kind == AL_WALK_EMBEDDINGS && key_is(k, "input")) {
        if (jpeek(&w->p) == '"') return whole_text(w, AL_TR_EMBED);
        return each_elem(w, e_embed, NULL);
    }
    return jskip(&w->p);
}

static int m_outmsg(walk_t *w, const jkey_t *k, void *arg)
{
    al_text_role_t args = AL_TR_OUT_TOOL_ARGS;
    AL_UNUSED(arg);
    if (key_is(k, "content")) return whole_text(w, AL_TR_OUT_CONTENT);
    if (key_is(k, "tool_calls")) return each_elem(w, e_toolcall, &args);
    if (key_is(k, "function_call")) return each_member(w, m_args, &args);
    return jskip(&w->p);
}

static int m_outchoice(walk_t *w, const jkey_t *k, void *arg)
{
    if (key_is(k, "message")) return each_member(w, m_outmsg, arg);
    return jskip(&w->p);
}

static int e_outchoice(walk_t *w, size_t ord, void *arg)
{
    AL_UNUSED(ord);
    return each_member(w, m_outchoice, arg);
}

static int m_response(walk_t *w, const jkey_t *k, void *arg)
{
    if (key_is(k, "choices")) return each_elem(w, e_outchoice, arg);
    return jskip(&w->p);
}

/* Walk a top-level object with cb, then build out when something changed. */
static int walk_body(const char *body, size_t len, member_cb cb, void *arg, al_redact_map_t *m,
                     bool restore, const al_guard_hooks_t *h, void *ud, al_buf_t *out,
                     bool *changed)
{
    walk_t w;
    int rc;
    size_t len0 = out->len;
    *changed = false;
    if (!body || !m) return AL_EINVAL;
    walk_init(&w, m, h, ud, restore, out->max);
    walk_reset(&w, body, len);
    /* validate first: no hook runs on a body that is not JSON */
    if (jpeek(&w.p) != '{' || !jvalid(body, len)) {
        rc = AL_EPARSE;
        goto out;
    }
    rc = each_member(&w, cb, arg);
    if (rc == AL_OK && !jend(&w.p)) rc = AL_EPARSE;
    if (rc != AL_OK || !w.changed) goto out;
    rc = out->err ? out->err : splice(&w, out);
    if (rc != AL_OK) {
        out->len = len0;
        if (out->p) out->p[len0] = '\0';
        goto out;
    }
    *changed = true;
out:
    walk_free(&w);
    return rc;
}

int al_redact_request(const char *body, size_t len, al_walk_kind_t kind, al_redact_map_t *m,
                      const al_guard_hooks_t *h, void *ud, al_buf_t *out, bool *changed)
{
    return walk_body(body, len, m_request, &kind, m, false, h, ud, out, changed);
}

int al_redact_response(const char *body, size_t len, al_redact_map_t *m, bool restore,
                       const al_guard_hooks_t *h, void *ud, al_buf_t *out, bool *changed)
{
    return walk_body(body, len, m_response, NULL, m, restore, h, ud, out, changed);
}

/* --- streams -------------------------------------------------------------------- */

typedef struct slot {
    long choice, tool;   /* tool -1: the choice's content */
    al_buf_t tail;
    bool touched;        /* fed by the current chunk */
} slot_t;

struct al_gstream {
    walk_t w;
    size_t window;
    slot_t *slots;
    size_t nslots;
    al_buf_t win;                 /* tail + delta */
    al_buf_t out;                 /* the chunk being emitted */
    al_buf_t shape[4];            /* raw id, object, created, model of the last chunk */
    bool has_shape[4];
    size_t held, max_held;
    int dead;                     /* sticky error: the stream stopped */
};

static const char *const shape_keys[4] = {"id", "object", "created", "model"};

al_gstream_t *al_gstream_new(al_redact_map_t *m, bool restore, const al_guard_hooks_t *h, void *ud,
                             size_t window)
{
    al_gstream_t *g = al_calloc(1, sizeof *g);
    walk_init(&g->w, m, h, ud, restore, STREAM_OUT_MAX);
    g->window = AL_MIN(AL_MAX(window, (size_t)WINDOW_MIN), (size_t)WINDOW_MAX);
    g->slots = al_calloc(STREAM_MAX_SLOTS, sizeof *g->slots);
    al_buf_init(&g->win, STREAM_OUT_MAX);
    al_buf_init(&g->out, STREAM_OUT_MAX);
    for (size_t i = 0; i < 4; i++) al_buf_init(&g->shape[i], 4096);
    return g;
}

void al_gstream_free(al_gstream_t *g)
{
    if (!g) return;
    walk_free(&g->w);
    for (size_t i = 0; i < g->nslots; i++) al_buf_free(&g->slots[i].tail);
    free(g->slots);
    al_buf_free(&g->win);
    al_buf_free(&g->out);
    for (size_t i = 0; i < 4; i++) al_buf_free(&g->shape[i]);
    free(g);
}

size_t al_gstream_held(const al_gstream_t *g)
{
    return g ? g->held : 0;
}

size_t al_gstream_max_held(const al_gstream_t *g)
{
    return g ? g->max_held : 0;
}

static slot_t *slot_get(al_gstream_t *g, long choice, long tool, int *rc)
{
    for (size_t i = 0; i < g->nslots; i++)
        if (g->slots[i].choice == choice && g->slots[i].tool == tool) return &g->slots[i];
    if (g->nslots == STREAM_MAX_SLOTS) {
        *rc = AL_ETOOBIG;
        return NULL;
    }
    slot_t *s = &g->slots[g->nslots++];
    s->choice = choice;
    s->tool = tool;
    al_buf_init(&s->tail, PEM_MAX + WINDOW_MAX);
    return s;
}

/* Characters that no entity or placeholder contains: the held suffix starts
 * after the last one. */
static bool hard_break(const char *w, size_t i)
{
    switch (w[i]) {
    case '\n': case '\r': case '\t': case ',': case ';': case '!': case '?': case '"':
    case '\'': case '`': case '<': case '>': case '{': case '}': case '|': case '[': case ']':
        return true;
    case ' ':
        if (i == 0) return false;
        switch (w[i - 1]) {
        case '.': case ',': case ';': case ':': case '!': case '?': return true;
        default: return w[i - 1] >= 'a' && w[i - 1] <= 'z';
        }
    default: return false;
    }
}

static const char *memmem_last(const char *h, size_t n, const char *needle, size_t k)
{
    const char *last = NULL;
    for (const char *p = h; n >= k;) {
        const char *q = memmem(p, n, needle, k);
        if (!q) break;
        last = q;
        n -= (size_t)(q - p) + 1;
        p = q + 1;
    }
    return last;
}

/* The last PEM block ("-----BEGIN" ... "-----END...-----"): where it
 * starts when it is still open within PEM_MAX bytes (else wlen), and when
 * it is closed, its range [*cb, *ce) (else both 0). */
static size_t pem_scan(const char *w, size_t wlen, size_t *cb, size_t *ce)
{
    const char *b = memmem_last(w, wlen, "-----BEGIN", 10), *e, *z;
    *cb = *ce = 0;
    if (!b) return wlen;
    size_t at = (size_t)(b - w);
    e = memmem(b + 10, wlen - at - 10, "-----END", 8);
    if (e && (z = memmem(e + 8, wlen - (size_t)(e - w) - 8, "-----", 5))) {
        *cb = at;
        *ce = (size_t)(z - w) + 5;
        return wlen;
    }
    return wlen - at > PEM_MAX ? wlen : at;
}

/* Start of a possible placeholder around r: a '[' at most PH_MAX bytes
 * back followed only by placeholder characters up to r, or r. */
static size_t ph_around(const char *w, size_t r)
{
    size_t j = r;
    while (j > 0 && r - j < PH_MAX) {
        unsigned char c = (unsigned char)w[j - 1];
        if (c == '[') return j - 1;
        if (!ph_char(c)) break;
        j--;
    }
    return r;
}

/* End of the closed placeholder that r cuts, or r. */
static size_t ph_end(const char *w, size_t wlen, size_t r)
{
    size_t b = ph_around(w, r);
    if (b == r) return r;
    for (size_t j = r; j < wlen && j - b < PH_MAX; j++) {
        if (w[j] == ']') return j + 1;
        if (!ph_char((unsigned char)w[j])) break;
    }
    return r;
}

/* Where to cut the window: everything before is released now. */
static size_t release_point(const char *w, size_t wlen, const al_find_t *f, size_t n,
                            size_t window)
{
    size_t r = 0, cb, ce, pem = pem_scan(w, wlen, &cb, &ce), limit = window;
    for (size_t i = wlen; i-- > 0;)
        if (hard_break(w, i)) {
            r = i + 1;
            break;
        }
    /* a complete PEM block goes out whole (its newlines are no breaks) */
    if (cb < r && r < ce) r = ce;
    /* an unclosed '[' that may begin a placeholder */
    const char *ob = memrchr(w, '[', wlen);
    if (ob && !memchr(ob, ']', wlen - (size_t)(ob - w)) && wlen - (size_t)(ob - w) < PH_MAX) {
        size_t at = (size_t)(ob - w), j = at + 1;
        while (j < wlen && ph_char((unsigned char)w[j])) j++;
        if (j == wlen) r = AL_MIN(r, at);
    }
    if (pem < r) {
        r = pem;
        limit = AL_MAX(window, (size_t)PEM_MAX);
    }
    /* an incomplete UTF-8 sequence at the end waits for its rest */
    for (size_t k = 1; k <= 3 && k <= wlen; k++) {
        unsigned char c = (unsigned char)w[wlen - k];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need > k) r = AL_MIN(r, wlen - k);
        break;
    }
    /* a finding that crosses the cut, or reaches the end of the window
     * (the next delta may extend it), waits whole */
    for (size_t i = n; i-- > 0;)
        if (f[i].start < r && (f[i].end > r || f[i].end >= wlen)) r = f[i].start;
    r = ph_around(w, r);
    while (r > 0 && r < wlen && ((unsigned char)w[r] & 0xC0) == 0x80 && wlen - r < limit) r--;
    if (wlen - r <= limit) return r;
    /* too much held: release anyway, but never cut a character, a finding
     * or a placeholder (extend the release over them instead) */
    r = wlen - limit;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++)
            if (f[i].start < r && f[i].end > r && f[i].end <= wlen) r = f[i].end;
        r = ph_end(w, wlen, r);
        while (r < wlen && ((unsigned char)w[r] & 0xC0) == 0x80) r++;
    }
    return r;
}

/* Feed one delta to a slot: the released text ends up in g->w.txt. */
static int slot_feed(al_gstream_t *g, slot_t *s, const char *d, size_t dlen, bool final)
{
    walk_t *w = &g->w;
    al_text_role_t role = s->tool < 0 ? AL_TR_OUT_CONTENT : AL_TR_OUT_TOOL_ARGS;
    size_t n, k = 0, r;
    bool same;
    int rc;
    al_buf_reset(&g->win);
    al_buf_append(&g->win, s->tail.p, s->tail.len);
    al_buf_append(&g->win, d, dlen);
    if (g->win.err) return g->win.err;
    const char *t = g->win.p;
    size_t len = g->win.len;
    s->touched = true;
    if ((rc = do_scan(w, role, t, len, &n)) != AL_OK) return rc;
    r = final ? len : release_point(t, len, w->fc, n, g->window);
    /* decide only on the findings wholly released */
    for (size_t i = 0; i < n; i++)
        if (w->fc[i].start < w->fc[i].end && w->fc[i].end <= r) w->fc[k++] = w->fc[i];
    if ((rc = decide_rewrite(w, role, t, r, k, &same)) != AL_OK) return rc;
    if (r) released(w, role, w->txt.p, w->txt.len);
    al_buf_reset(&s->tail);
    al_buf_append(&s->tail, t + r, len - r);
    return s->tail.err;
}

typedef struct chunkst {
    long choice;
    bool final;
    bool other;          /* carries something besides held texts */
    bool released;       /* some text was released */
    long tool;           /* tool_calls element being walked */
    size_t tc_open;      /* delta.tool_calls '[' + 1, or 0 */
    bool tc_nonempty;
} chunkst_t;

/* A delta text at the cursor (string or null) for slot (choice, tool). */
static int stream_text(al_gstream_t *g, chunkst_t *c, long tool)
{
    walk_t *w = &g->w;
    char ch = jpeek(&w->p);
    size_t start = w->p.i;
    slot_t *s = NULL;
    int rc = AL_OK;
    if (ch != '"' && ch != 'n') {
        c->other = true;
        return jskip(&w->p);
    }
    if (ch == 'n') {
        if ((rc = jskip(&w->p)) != AL_OK) return rc;
        for (size_t i = 0; i < g->nslots; i++)
            if (g->slots[i].choice == c->choice && g->slots[i].tool == tool) s = &g->slots[i];
        if (!c->final || !s || !s->tail.len) return AL_OK;
        al_buf_reset(&w->dec);
    } else {
        al_buf_reset(&w->dec);
        if ((rc = jstr(&w->p, &w->dec)) != AL_OK) return rc;
        if (w->dec.err) return w->dec.err;
        if (!(s = slot_get(g, c->choice, tool, &rc))) return rc;
    }
    if ((rc = slot_feed(g, s, w->dec.p ? w->dec.p : "", w->dec.len, c->final)) != AL_OK) return rc;
    c->released |= w->txt.len > 0;
    edit_begin(w, start, w->p.i);
    al_buf_json_str(&w->reps, w->txt.p, w->txt.len);
    edit_end(w);
    return w->reps.err;
}

static int sm_function(walk_t *w, const jkey_t *k, void *arg)
{
    chunkst_t *c = arg;
    al_gstream_t *g = (al_gstream_t *)w;   /* w is the first member */
    if (key_is(k, "arguments")) return stream_text(g, c, c->tool);
    return jskip_note(&w->p, &c->other);
}

static int sm_toolcall_index(walk_t *w, const jkey_t *k, void *arg)
{
    if (key_is(k, "index")) return jindex(&w->p, arg);
    return jskip(&w->p);
}

static int sm_toolcall(walk_t *w, const jkey_t *k, void *arg)
{
    chunkst_t *c = arg;
    if (key_is(k, "index")) return jskip(&w->p);
    if (key_is(k, "function") && jpeek(&w->p) == '{') return each_member(w, sm_function, c);
    return jskip_note(&w->p, &c->other);
}

static int se_toolcall(walk_t *w, size_t ord, void *arg)
{
    chunkst_t *c = arg;
    size_t at;
    unsigned depth = w->p.depth;
    long idx = -1;
    int rc;
    if (jpeek(&w->p) != '{') return jskip_note(&w->p, &c->other);
    at = w->p.i;
    if ((rc = each_member(w, sm_toolcall_index, &idx)) != AL_OK) return rc;
    w->p.i = at;
    w->p.depth = depth;
    c->tool = idx >= 0 ? idx : (long)ord;
    return each_member(w, sm_toolcall, c);
}

static int sm_delta(walk_t *w, const jkey_t *k, void *arg)
{
    chunkst_t *c = arg;
    if (key_is(k, "content")) return stream_text((al_gstream_t *)w, c, -1);
    if (key_is(k, "tool_calls") && jpeek(&w->p) == '[') {
        jp_t probe = w->p;
        c->tc_open = w->p.i + 1;
        probe.i++;
        c->tc_nonempty = jpeek(&probe) != ']';
        return each_elem(w, se_toolcall, c);
    }
    return jskip_note(&w->p, &c->other);
}

typedef struct choice1 {
    long index;
    bool final;
    bool other;
    size_t delta;        /* position of the delta object, or 0 */
} choice1_t;

static int sm_choice1(walk_t *w, const jkey_t *k, void *arg)
{
    choice1_t *c = arg;
    if (key_is(k, "index")) return jindex(&w->p, &c->index);
    if (key_is(k, "finish_reason")) return jskip_note(&w->p, &c->final);
    if (key_is(k, "delta") && jpeek(&w->p) == '{') {
        c->delta = w->p.i;
        return jskip(&w->p);
    }
    return jskip_note(&w->p, &c->other);
}

/* The rest of a finishing choice: tails no delta of this chunk took. */
static int flush_choice(al_gstream_t *g, chunkst_t *c, size_t delta, bool delta_empty,
                        size_t choice_open)
{
    walk_t *w = &g->w;
    size_t ins_delta = w->ned, ntools = 0;
    int rc;
    bool have_delta_edit = false;
    /* content first, into the delta object */
    for (size_t i = 0; i < g->nslots; i++) {
        slot_t *s = &g->slots[i];
        if (s->choice != c->choice || s->touched || !s->tail.len || s->tool >= 0) continue;
        if ((rc = slot_feed(g, s, "", 0, true)) != AL_OK) return rc;
        edit_begin(w, delta ? delta + 1 : choice_open + 1, delta ? delta + 1 : choice_open + 1);
        have_delta_edit = true;
        al_buf_puts(&w->reps, "\"content\":");
        al_buf_json_str(&w->reps, w->txt.p, w->txt.len);
        c->released = true;
    }
    for (size_t i = 0; i < g->nslots; i++) {
        slot_t *s = &g->slots[i];
        if (s->choice != c->choice || s->touched || !s->tail.len || s->tool < 0) continue;
        if ((rc = slot_feed(g, s, "", 0, true)) != AL_OK) return rc;
        if (ntools++ == 0) {
            if (c->tc_open) {
                if (have_delta_edit) {
                    al_buf_putc(&w->reps, ',');   /* the delta holds tool_calls */
                    edit_end(w);
                }
                have_delta_edit = false;
                edit_begin(w, c->tc_open, c->tc_open);
            } else {
                if (!have_delta_edit) {
                    size_t at = delta ? delta + 1 : choice_open + 1;
                    edit_begin(w, at, at);
                    have_delta_edit = true;
                } else {
                    al_buf_putc(&w->reps, ',');
                }
                al_buf_puts(&w->reps, "\"tool_calls\":[");
            }
        } else {
            al_buf_putc(&w->reps, ',');
        }
        al_buf_printf(&w->reps, "{\"index\":%ld,\"function\":{\"arguments\":", s->tool);
        al_buf_json_str(&w->reps, w->txt.p, w->txt.len);
        al_buf_puts(&w->reps, "}}");
        c->released = true;
    }
    if (ntools && c->tc_open) {
        if (c->tc_nonempty) al_buf_putc(&w->reps, ',');
        edit_end(w);
        return w->reps.err;
    }
    if (ntools) al_buf_putc(&w->reps, ']');
    if (w->ned > ins_delta && (have_delta_edit || ntools)) {
        if (!delta) {
            /* no delta object at all: wrap what was built */
            edit_t *e = &w->ed[w->ned - 1];
            size_t len = w->reps.len - e->roff;
            char *tmp = al_malloc(len + 1);
            memcpy(tmp, w->reps.p + e->roff, len);
            w->reps.len = e->roff;
            al_buf_puts(&w->reps, "\"delta\":{");
            al_buf_append(&w->reps, tmp, len);
            al_buf_puts(&w->reps, "},");
            free(tmp);
        } else if (!delta_empty) {
            al_buf_putc(&w->reps, ',');
        }
        edit_end(w);
    }
    return w->reps.err;
}

static int se_choice(walk_t *w, size_t ord, void *arg)
{
    bool *other = arg;
    al_gstream_t *g = (al_gstream_t *)w;
    choice1_t c1 = {.index = -1};
    chunkst_t c = {0};
    size_t at, end;
    unsigned depth = w->p.depth;
    bool delta_empty = true;
    int rc;
    if (jpeek(&w->p) != '{') {
        *other = true;
        return jskip(&w->p);
    }
    at = w->p.i;
    if ((rc = each_member(w, sm_choice1, &c1)) != AL_OK) return rc;
    end = w->p.i;
    c.choice = c1.index >= 0 ? c1.index : (long)ord;
    c.final = c1.final;
    c.other = c1.other || c1.final;
    for (size_t i = 0; i < g->nslots; i++)
        if (g->slots[i].choice == c.choice) g->slots[i].touched = false;
    if (c1.delta) {
        w->p.i = c1.delta;
        w->p.depth = depth + 1;
        jws(&w->p);
        delta_empty = false;
        {
            jp_t probe = w->p;
            probe.i++;
            delta_empty = jpeek(&probe) == '}';
        }
        if ((rc = each_member(w, sm_delta, &c)) != AL_OK) return rc;
    }
    if (c.final && (rc = flush_choice(g, &c, c1.delta, delta_empty, at)) != AL_OK) return rc;
    w->p.i = end;
    w->p.depth = depth;
    *other |= c.other || c.released;
    return AL_OK;
}

typedef struct chunktop {
    bool other;
    bool choices;        /* a non-empty choices array */
} chunktop_t;

static int sm_top(walk_t *w, const jkey_t *k, void *arg)
{
    chunktop_t *t = arg;
    al_gstream_t *g = (al_gstream_t *)w;
    for (size_t i = 0; i < 4; i++) {
        if (!key_is(k, shape_keys[i])) continue;
        size_t at;
        int rc;
        jws(&w->p);
        at = w->p.i;
        if ((rc = jskip(&w->p)) != AL_OK) return rc;
        al_buf_reset(&g->shape[i]);
        put_fixed(&g->shape[i], w->p.s + at, w->p.i - at);
        g->has_shape[i] = g->shape[i].err == 0;
        return AL_OK;
    }
    if (key_is(k, "choices") && jpeek(&w->p) == '[') {
        jp_t probe = w->p;
        probe.i++;
        if (jpeek(&probe) != ']') t->choices = true;
        return each_elem(w, se_choice, &t->other);
    }
    if (key_is(k, "system_fingerprint") || key_is(k, "service_tier") ||
        key_is(k, "obfuscation"))
        return jskip(&w->p);
    return jskip_note(&w->p, &t->other);
}

static int emit_out(al_gstream_t *g, al_gstream_emit_fn emit, void *eud)
{
    int rc;
    if (g->out.err) return g->out.err;
    rc = emit(eud, g->out.p ? g->out.p : "", g->out.len);
    return rc;
}

static void count_held(al_gstream_t *g)
{
    size_t h = 0;
    for (size_t i = 0; i < g->nslots; i++) h += g->slots[i].tail.len;
    g->held = h;
    if (h > g->max_held) g->max_held = h;
}

int al_gstream_chunk(al_gstream_t *g, const char *json, size_t len, al_gstream_emit_fn emit,
                     void *eud)
{
    walk_t *w = &g->w;
    chunktop_t t = {0};
    int rc;
    if (g->dead) return g->dead;
    if (!json) return AL_EINVAL;
    walk_reset(w, json, len);
    /* a malformed chunk changes nothing and does not stop the stream */
    if (jpeek(&w->p) != '{' || !jvalid(json, len)) return AL_EPARSE;
    rc = each_member(w, sm_top, &t);
    if (rc == AL_OK && !jend(&w->p)) rc = AL_EPARSE;
    count_held(g);
    if (rc != AL_OK) goto fail;
    if (t.choices && !t.other) return AL_OK;   /* everything held, nothing else */
    al_buf_reset(&g->out);
    if ((rc = splice(w, &g->out)) != AL_OK) goto fail;
    if ((rc = emit_out(g, emit, eud)) != AL_OK) goto fail;
    return AL_OK;
fail:
    g->dead = rc;
    return rc;
}

int al_gstream_flush(al_gstream_t *g, al_gstream_emit_fn emit, void *eud)
{
    walk_t *w = &g->w;
    al_buf_t *o = &g->out;
    long prev = -1;
    bool any = false, first_choice = true;
    int rc = AL_OK;
    if (g->dead) return g->dead;
    for (size_t i = 0; i < g->nslots; i++) any |= g->slots[i].tail.len > 0;
    if (!any) return AL_OK;
    /* choices in ascending order, each with its content then its tools */
    al_buf_reset(o);
    al_buf_putc(o, '{');
    for (size_t i = 0; i < 4; i++) {
        if (!g->has_shape[i] && i != 1) continue;
        al_buf_printf(o, "\"%s\":", shape_keys[i]);
        if (g->has_shape[i]) al_buf_append(o, g->shape[i].p, g->shape[i].len);
        else al_buf_puts(o, "\"chat.completion.chunk\"");
        al_buf_putc(o, ',');
    }
    al_buf_puts(o, "\"choices\":[");
    for (;;) {
        long ch = -1;
        for (size_t i = 0; i < g->nslots; i++)
            if (g->slots[i].tail.len && g->slots[i].choice > prev &&
                (ch < 0 || g->slots[i].choice < ch))
                ch = g->slots[i].choice;
        if (ch < 0) break;
        prev = ch;
        if (!first_choice) al_buf_putc(o, ',');
        first_choice = false;
        al_buf_printf(o, "{\"index\":%ld,\"delta\":{", ch);
        bool first = true;
        size_t ntools = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (size_t i = 0; i < g->nslots; i++) {
                slot_t *s = &g->slots[i];
                if (s->choice != ch || !s->tail.len || (pass == 0) != (s->tool < 0)) continue;
                if ((rc = slot_feed(g, s, "", 0, true)) != AL_OK) goto fail;
                if (pass == 0) {
                    al_buf_puts(o, "\"content\":");
                    al_buf_json_str(o, w->txt.p, w->txt.len);
                    first = false;
                    continue;
                }
                if (ntools++ == 0) al_buf_puts(o, first ? "\"tool_calls\":[" : ",\"tool_calls\":[");
                else al_buf_putc(o, ',');
                al_buf_printf(o, "{\"index\":%ld,\"function\":{\"arguments\":", s->tool);
                al_buf_json_str(o, w->txt.p, w->txt.len);
                al_buf_puts(o, "}}");
            }
        }
        if (ntools) al_buf_putc(o, ']');
        al_buf_puts(o, "},\"finish_reason\":null}");
    }
    al_buf_puts(o, "]}");
    count_held(g);
    if ((rc = emit_out(g, emit, eud)) != AL_OK) goto fail;
    return AL_OK;
fail:
    g->dead = rc;
    return rc;
}
