/* schema.c - JSON Schema (draft 2020-12 core keywords) for structured output.
 * Compilation parses the schema with yajl_tree (kept alive: const/enum values
 * and property names are borrowed from it) into a graph of nodes, one per
 * subschema; root-level $defs (and draft-07 "definitions") are compiled
 * beside the root and every $ref is resolved to a node afterwards, then a
 * search for cycles that do not consume the document ($ref/allOf/anyOf/
 * oneOf/not chains) rejects schemas that could never terminate.  Properties
 * and required names are merged into one sorted table (binary search per
 * member), enum values are sorted by a structural hash, numbers are compared
 * exactly as normalised decimals (digits and exponent), and each distinct
 * pattern is one Vectorscan database, guarded by a cost estimate because
 * Vectorscan compile time explodes on repeated Unicode classes.  Validation
 * walks the document with a step budget proportional to its size, a cap on
 * evaluation depth, and a path stack that is only printed on the first
 * failure ("$.items[2].price: minimum"); branches of anyOf/oneOf/not run
 * quietly.  Before yajl sees any text, one pass refuses raw NUL bytes and
 * comments (not JSON, though yajl_tree takes them), nesting past the cap,
 * and "\u0000" escapes (yajl_tree keeps strings NUL-terminated, so such a
 * string could not be checked faithfully).  Values and member names from
 * the document never reach the message except plain short names.  A
 * compiled schema is immutable and shared between threads: each
 * thread keeps one Vectorscan scratch, grown for a schema the first time it
 * validates with it (a per-schema serial number tells which schema it was
 * last grown for). */
#include "guard/schema.h"

#include <hs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "util/json.h"

#define SCHEMA_MAX_BYTES (256u * 1024u)
#define SCHEMA_MAX_DEPTH 64
#define SCHEMA_MAX_PATTERNS 256
#define DOC_MAX_DEPTH 128
#define EVAL_MAX_DEPTH 1024          /* nested evaluations, refs included */
#define BUDGET_BASE (1 << 20)        /* steps every validation may take ... */
#define BUDGET_PER_BYTE 16           /* ... plus this many per document byte */
/* Pattern cost units (see pattern_cost): per pattern and per schema. */
#define PATTERN_MAX_COST 1000
#define SCHEMA_MAX_PATTERN_COST 2000
#define PATTERN_MAX_BYTES 1024

enum {
    T_NULL = 1, T_BOOL = 2, T_OBJ = 4, T_ARR = 8, T_NUM = 16, T_STR = 32, T_INT = 64,
};

/* A JSON number as sign, significant digits and a decimal exponent:
 * value = digits * 10^exp; zero has nd == 0. */
typedef struct num {
    const char *d;   /* first significant digit in the number's text */
    size_t nd;       /* significant digits (a '.' among them is skipped) */
    int64_t exp;
    bool neg;
} num_t;

typedef struct node node_t;

typedef struct prop {
    const char *name;
    node_t *schema;  /* NULL: only required */
    bool required;
    size_t order;    /* position in the source, for last-wins dedup */
} prop_t;

typedef struct patprop {
    unsigned pat;
    node_t *schema;
} patprop_t;

typedef struct enumv {
    uint64_t h;
    yajl_val v;
} enumv_t;

typedef struct numchk {
    num_t min, max, xmin, xmax;
    bool has_min, has_max, has_xmin, has_xmax;
} numchk_t;

enum { N_FALSE = 1, N_CONST = 2 };
enum { REF_NONE = -2, REF_ROOT = -1 };

struct node {
    unsigned types;        /* T_* mask, 0 = any */
    unsigned flags;
    uint64_t min_len, max_len, min_items, max_items;
    int pattern;           /* index in al_schema.pats or -1 */
    numchk_t *num;
    prop_t *props;
    size_t nprops;
    bool any_required;
    patprop_t *patprops;
    size_t npatprops;
    node_t *additional;
    node_t **prefix;
    size_t nprefix;
    node_t *items;
    node_t **all, **any, **one;
    size_t nall, nany, none;
    node_t *not_;
    long ref_def;          /* REF_NONE, REF_ROOT or index in defs */
    node_t *ref;
    yajl_val konst;
    enumv_t *enums;
    size_t nenums;
    bool has_enum;
    unsigned char color;   /* cycle search */
};

typedef struct def {
    int ns;                /* 0: $defs, 1: definitions */
    const char *name;
    yajl_val v;
    node_t *node;
} def_t;

typedef struct pat {
    const char *src;
    hs_database_t *db;
} pat_t;

struct al_schema {
    yajl_val tree;
    node_t *root;
    node_t **nodes;
    size_t nnodes, capnodes;
    def_t *defs;
    size_t ndefs;
    pat_t *pats;
    size_t npats;
    uint64_t serial;
};

static atomic_uint_fast64_t next_serial = 1;

/* --- errors ------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* --- raw text checks ---------------------------------------------------- */

/* One pass over JSON text before yajl sees it: raw NUL bytes and comments
 * (yajl_tree accepts those) are not JSON; nesting past max_depth and
 * "\u0000" escapes (yajl_tree keeps strings NUL-terminated, which would cut
 * them short) are refused as unsupported. */
static int text_scan(const char *p, size_t len, size_t max_depth, const char **why)
{
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '\0') {
            *why = "NUL byte";
            return AL_EPARSE;
        }
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < len && p[i + 1] == 'u' && memcmp(p + i + 2, "0000", 4) == 0) {
                    *why = "\\u0000 in a string";
                    return AL_EINVAL;
                }
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '/') {
            *why = "comment";
            return AL_EPARSE;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                *why = "too deep";
                return AL_EINVAL;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return AL_OK;
}

static int parse_tree(const char *p, size_t len, yajl_val *out)
{
    char *z = malloc(len + 1);
    if (!z) return AL_ENOMEM;
    memcpy(z, p, len);
    z[len] = '\0';
    char ebuf[128];
    *out = yajl_tree_parse(z, ebuf, sizeof(ebuf));
    free(z);
    return *out ? AL_OK : AL_EPARSE;
}

/* --- numbers ------------------------------------------------------------ */

/* Normalise yajl's number text (already valid JSON number syntax). */
static void num_parse(const char *r, num_t *n)
{
    const char *p = r;
    n->neg = false;
    if (*p == '-') {
        n->neg = true;
        p++;
    }
    const char *first = NULL, *last = NULL;
    size_t ndig = 0, nfrac = 0, idx_last = 0;
    bool frac = false;
    for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
        if (*p == '.') {
            frac = true;
            continue;
        }
        if (frac) nfrac++;
        if (*p != '0') {
            if (!first) first = p;
            last = p;
            idx_last = ndig;
        }
        ndig++;
    }
    int64_t e = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        bool eneg = false;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        for (; *p >= '0' && *p <= '9'; p++)
            if (e < 1000000000000000LL) e = e * 10 + (*p - '0');
        if (eneg) e = -e;
    }
    if (!first) {
        n->d = NULL;
        n->nd = 0;
        n->exp = 0;
        n->neg = false;
        return;
    }
    size_t nd = 0;
    for (const char *q = first; q <= last; q++)
        if (*q != '.') nd++;
    n->d = first;
    n->nd = nd;
    n->exp = e - (int64_t)nfrac + (int64_t)(ndig - 1 - idx_last);
}

static bool num_is_int(const num_t *n)
{
    return n->nd == 0 || n->exp >= 0;
}

/* Digit i of the significant digits (0 past the end). */
typedef struct digits {
    const char *p;
    size_t left;
} digits_t;

static int digit_next(digits_t *it)
{
    if (!it->left) return 0;
    if (*it->p == '.') it->p++;
    it->left--;
    return *it->p++ - '0';
}

static int num_cmp(const num_t *a, const num_t *b)
{
    int sa = a->nd ? (a->neg ? -1 : 1) : 0, sb = b->nd ? (b->neg ? -1 : 1) : 0;
    if (sa != sb) return sa < sb ? -1 : 1;
    if (sa == 0) return 0;
    int mag = 0;
    int64_t ma = a->exp + (int64_t)a->nd, mb = b->exp + (int64_t)b->nd;
    if (ma != mb) {
        mag = ma < mb ? -1 : 1;
    } else {
        digits_t ia = {a->d, a->nd}, ib = {b->d, b->nd};
        for (size_t i = 0, n = AL_MAX(a->nd, b->nd); i < n && !mag; i++) {
            int da = digit_next(&ia), db = digit_next(&ib);
            if (da != db) mag = da < db ? -1 : 1;
        }
    }
    return sa > 0 ? mag : -mag;
}

/* Saturating conversion of a non-negative integer. */
static uint64_t num_u64(const num_t *n)
{
    if (n->nd == 0) return 0;
    if (n->exp + (int64_t)n->nd > 19) return UINT64_MAX;
    uint64_t v = 0;
    digits_t it = {n->d, n->nd};
    for (size_t i = 0; i < n->nd; i++) v = v * 10 + (uint64_t)digit_next(&it);
    for (int64_t i = 0; i < n->exp; i++) {
        if (v > UINT64_MAX / 10) return UINT64_MAX;
        v *= 10;
    }
    return v;
}

/* --- structural hash and equality (numbers by value) -------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t vhash(yajl_val v, int64_t *budget)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    (*budget)--;
    if (!v) return mix(h ^ 1);
    switch (v->type) {
    case yajl_t_string: {
        const char *s = v->u.string ? v->u.string : "";
        size_t n = strlen(s);
        *budget -= (int64_t)(n / 32);
        return mix(hash_bytes(h ^ 4, s, n));
    }
    case yajl_t_number: {
        num_t n;
        num_parse(v->u.number.r, &n);
        h = mix(h ^ 5 ^ ((uint64_t)n.neg << 8)) + (uint64_t)n.exp;
        digits_t it = {n.d, n.nd};
        for (size_t i = 0; i < n.nd; i++) {
            char c = (char)('0' + digit_next(&it));
            h = hash_bytes(h, &c, 1);
        }
        return mix(h);
    }
    case yajl_t_true: return mix(h ^ 2);
    case yajl_t_false: return mix(h ^ 3);
    case yajl_t_array:
        h ^= 6;
        for (size_t i = 0; i < v->u.array.len && *budget >= 0; i++)
            h = mix(h + vhash(v->u.array.values[i], budget));
        return h;
    case yajl_t_object: {
        uint64_t sum = 0;
        for (size_t i = 0; i < v->u.object.len && *budget >= 0; i++) {
            const char *k = v->u.object.keys[i] ? v->u.object.keys[i] : "";
            uint64_t hk = mix(hash_bytes(h ^ 4, k, strlen(k)));
            sum += mix(hk ^ (vhash(v->u.object.values[i], budget) * 0x9e3779b97f4a7c15ULL));
        }
        return mix(h ^ 7 ^ sum);
    }
    default: return mix(h ^ 1);
    }
}

static int vtype(yajl_val v)
{
    return v ? (int)v->type : (int)yajl_t_null;
}

static bool veq(yajl_val a, yajl_val b, int64_t *budget)
{
    if (--*budget < 0) return false;
    int ta = vtype(a), tb = vtype(b);
    if (ta != tb) return false;
    switch (ta) {
    case yajl_t_string:
        return strcmp(a->u.string ? a->u.string : "", b->u.string ? b->u.string : "") == 0;
    case yajl_t_number: {
        num_t x, y;
        num_parse(a->u.number.r, &x);
        num_parse(b->u.number.r, &y);
        return num_cmp(&x, &y) == 0;
    }
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!veq(a->u.array.values[i], b->u.array.values[i], budget)) return false;
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) return false;
        for (size_t i = 0; i < a->u.object.len; i++) {
            const char *k = a->u.object.keys[i] ? a->u.object.keys[i] : "";
            yajl_val bv = NULL;
            bool found = false;
            for (size_t j = b->u.object.len; j-- > 0;) {
                if (--*budget < 0) return false;
                if (strcmp(b->u.object.keys[j] ? b->u.object.keys[j] : "", k) == 0) {
                    bv = b->u.object.values[j];
                    found = true;
                    break;
                }
            }
            if (!found || !veq(a->u.object.values[i], bv, budget)) return false;
        }
        return true;
    default: return true; /* null, true, false */
    }
}

/* --- UTF-8 -------------------------------------------------------------- */

/* Code points in p/n; false when p is not strictly valid UTF-8. */
static bool utf8_count(const char *s, size_t n, uint64_t *count)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t c = 0;
    for (size_t i = 0; i < n; c++) {
        unsigned char b = p[i];
        size_t k;
        uint32_t cp, minv;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            k = 1, cp = b & 0x1f, minv = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            k = 2, cp = b & 0x0f, minv = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            k = 3, cp = b & 0x07, minv = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if (cp < minv || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += k + 1;
    }
    *count = c;
    return true;
}

/* --- pattern cost ------------------------------------------------------- */

/* Vectorscan's compile time grows with the automaton it builds: repeats of
 * classes that span multi-byte UTF-8 ("\p{L}{20}" takes seconds, "(\p{L}|
 * \p{N}|x){30}y" tens of seconds) and that call cannot be interrupted.  So
 * each pattern gets an upper estimate before it is compiled: an ASCII atom
 * costs 1, one matching any UTF-8 character ('.', negated classes, \D \W
 * \S) 10, a Unicode property 400 (each one is a large UTF-8 automaton);
 * alternatives add, bounded repeats multiply by their bound (the automaton
 * is copied), unbounded ones and '?' by 1 (a loop).  Measured with
 * Vectorscan 5.4: up to about 0.7 ms per unit ("\p{L}\p{L}+" = 800 takes
 * 550 ms, ".{100}" = 1000 takes 50 ms), so the caps of 1000 per pattern and
 * 2000 per schema keep a hostile schema's compile under about 1.5 s. */
#define COST_WIDE 10
#define COST_PROP 400
#define COST_INF (UINT64_C(1) << 40)

typedef struct pcost {
    const char *p, *end;
    int depth;
} pcost_t;

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b > COST_INF ? COST_INF : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    if (a && b > COST_INF / a) return COST_INF;
    return a * b > COST_INF ? COST_INF : a * b;
}

static uint64_t cost_alt(pcost_t *c);

/* Cost of an escape after the backslash (c->p on the escaped char). */
static uint64_t cost_escape(pcost_t *c)
{
    if (c->p >= c->end) return 1;
    char e = *c->p++;
    if (e == 'p' || e == 'P') {
        if (c->p < c->end && *c->p == '{') {
            while (c->p < c->end && *c->p != '}') c->p++;
            if (c->p < c->end) c->p++;
        } else if (c->p < c->end) {
            c->p++;
        }
        return COST_PROP;
    }
    if (e == 'D' || e == 'W' || e == 'S' || e == 'X' || e == 'N' || e == 'H' || e == 'V' ||
        e == 'R')
        return COST_WIDE;
    if (e == 'Q') { /* literal up to \E */
        uint64_t n = 0;
        while (c->p < c->end && !(c->p + 1 < c->end && c->p[0] == '\\' && c->p[1] == 'E')) {
            c->p++;
            n++;
        }
        if (c->p < c->end) c->p += 2;
        return n ? n : 1;
    }
    if ((e == 'x' || e == 'o') && c->p < c->end && *c->p == '{') {
        while (c->p < c->end && *c->p != '}') c->p++;
        if (c->p < c->end) c->p++;
    }
    return 1;
}

static uint64_t cost_class(pcost_t *c)
{
    uint64_t cost = 1;
    if (c->p < c->end && *c->p == '^') {
        cost = COST_WIDE;
        c->p++;
    }
    if (c->p < c->end && *c->p == ']') c->p++;
    while (c->p < c->end && *c->p != ']') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '\\') {
            bool hex = c->p + 1 < c->end && c->p[0] == 'x' && c->p[1] == '{';
            uint64_t e = cost_escape(c); /* not inside AL_MAX: it advances c */
            if (hex) e = COST_WIDE;      /* \x{...}: may be a multi-byte range */
            cost = AL_MAX(cost, e);
        } else if (ch == '[' && c->p < c->end && *c->p == ':') {
            while (c->p < c->end && *c->p != ']') c->p++;
            if (c->p < c->end) c->p++;
        } else if (ch >= 0x80) {
            cost = AL_MAX(cost, (uint64_t)COST_WIDE);
        }
    }
    if (c->p < c->end) c->p++;
    return cost;
}

static bool parse_bound(pcost_t *c, uint64_t *v)
{
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        x = x * 10 + (uint64_t)(*c->p++ - '0');
        if (x > 1000000) x = 1000000;
    }
    *v = x;
    return true;
}

/* A quantifier at c->p: its multiplier, or 0 when there is none. */
static uint64_t cost_quant(pcost_t *c)
{
    if (c->p >= c->end) return 0;
    uint64_t mult = 0;
    char q = *c->p;
    if (q == '*' || q == '+' || q == '?') {
        c->p++;
        mult = 1;
    } else if (q == '{') {
        pcost_t save = *c;
        c->p++;
        uint64_t lo = 0, hi = 0;
        bool has_lo = parse_bound(c, &lo);
        if (c->p < c->end && *c->p == '}' && has_lo) {
            hi = lo;
        } else if (c->p < c->end && *c->p == ',') {
            c->p++;
            if (!parse_bound(c, &hi)) hi = lo + 1;
        } else {
            *c = save;
            return 0; /* a literal brace */
        }
        if (c->p >= c->end || *c->p != '}') {
            *c = save;
            return 0;
        }
        c->p++;
        mult = AL_MAX(AL_MAX(lo, hi), (uint64_t)1);
    } else {
        return 0;
    }
    if (c->p < c->end && (*c->p == '?' || *c->p == '+')) c->p++; /* lazy, possessive */
    return mult;
}

static uint64_t cost_concat(pcost_t *c)
{
    uint64_t total = 0;
    while (c->p < c->end && *c->p != '|' && *c->p != ')') {
        unsigned char ch = (unsigned char)*c->p++;
        uint64_t atom;
        if (ch == '(') {
            if (c->p < c->end && *c->p == '?') { /* (?:  (?i)  (?<name> ... */
                while (c->p < c->end && *c->p != ':' && *c->p != ')' && *c->p != '>' &&
                       *c->p != '(')
                    c->p++;
                if (c->p < c->end && (*c->p == ':' || *c->p == '>')) c->p++;
            }
            if (++c->depth > 200) return COST_INF;
            atom = cost_alt(c);
            c->depth--;
            if (c->p < c->end && *c->p == ')') c->p++;
        } else if (ch == '[') {
            atom = cost_class(c);
        } else if (ch == '\\') {
            atom = cost_escape(c);
        } else if (ch == '.') {
            atom = COST_WIDE;
        } else if (ch == '^' || ch == '$') {
            atom = 0;
        } else {
            atom = 1;
            if (ch >= 0xc0) /* one multi-byte character */
                while (c->p < c->end && ((unsigned char)*c->p & 0xc0) == 0x80) c->p++;
        }
        uint64_t m;
        while ((m = cost_quant(c)) != 0) atom = sat_mul(atom, m);
        total = sat_add(total, atom);
    }
    return total;
}

static uint64_t cost_alt(pcost_t *c)
{
    uint64_t total = cost_concat(c);
    while (c->p < c->end && *c->p == '|') {
        c->p++;
        total = sat_add(total, cost_concat(c));
    }
    return total;
}

static uint64_t pattern_cost(const char *p, size_t n)
{
    pcost_t c = {p, p + n, 0};
    uint64_t total = 0;
    while (c.p < c.end) {
        total = sat_add(total, cost_alt(&c));
        if (c.p < c.end) c.p++; /* a stray ')' */
    }
    return total;
}

/* --- compilation -------------------------------------------------------- */

typedef struct cctx {
    al_schema_t *s;
    char *err;
    size_t errlen;
    char path[256];
    size_t plen;
    uint64_t cost;
    int rc;
} cctx_t;

static size_t path_push(cctx_t *c, const char *key, long idx)
{
    size_t old = c->plen;
    int n = key ? snprintf(c->path + c->plen, sizeof(c->path) - c->plen, ".%s", key)
                : snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%ld]", idx);
    if (n > 0) c->plen = AL_MIN(c->plen + (size_t)n, sizeof(c->path) - 1);
    return old;
}

static void path_pop(cctx_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static node_t *cfail(cctx_t *c, const char *what)
{
    if (c->rc == AL_OK) {
        c->rc = AL_EINVAL;
        set_err(c->err, c->errlen, "%s: %s", c->path, what);
    }
    return NULL;
}

static node_t *node_new(al_schema_t *s)
{
    if (s->nnodes == s->capnodes) {
        s->capnodes = s->capnodes ? s->capnodes * 2 : 16;
        s->nodes = al_realloc(s->nodes, s->capnodes * sizeof(*s->nodes));
    }
    node_t *n = al_calloc(1, sizeof(*n));
    n->max_len = n->max_items = UINT64_MAX;
    n->pattern = -1;
    n->ref_def = REF_NONE;
    s->nodes[s->nnodes++] = n;
    return n;
}

static node_t *compile_node(cctx_t *c, yajl_val v);

static node_t *compile_sub(cctx_t *c, yajl_val v, const char *key, long idx)
{
    size_t old = path_push(c, key, idx);
    node_t *n = compile_node(c, v);
    if (n) path_pop(c, old);
    return n;
}

static int add_pattern(cctx_t *c, const char *src)
{
    al_schema_t *s = c->s;
    for (size_t i = 0; i < s->npats; i++)
        if (strcmp(s->pats[i].src, src) == 0) return (int)i;
    if (s->npats >= SCHEMA_MAX_PATTERNS) {
        cfail(c, "too many patterns");
        return -1;
    }
    size_t n = strlen(src);
    if (n > PATTERN_MAX_BYTES) {
        cfail(c, "pattern too long");
        return -1;
    }
    uint64_t cost = pattern_cost(src, n);
    if (cost > PATTERN_MAX_COST || c->cost + cost > SCHEMA_MAX_PATTERN_COST) {
        cfail(c, "pattern too complex");
        return -1;
    }
    c->cost += cost;
    hs_database_t *db = NULL;
    hs_compile_error_t *ce = NULL;
    if (hs_compile(src, HS_FLAG_UTF8 | HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY, HS_MODE_BLOCK,
                   NULL, &db, &ce) != HS_SUCCESS) {
        char msg[160];
        snprintf(msg, sizeof(msg), "pattern not supported (%s)",
                 ce && ce->message ? ce->message : "compile error");
        hs_free_compile_error(ce);
        cfail(c, msg);
        return -1;
    }
    if (!s->pats) s->pats = al_calloc(SCHEMA_MAX_PATTERNS, sizeof(*s->pats));
    s->pats[s->npats].src = src;
    s->pats[s->npats].db = db;
    return (int)s->npats++;
}

/* A non-negative integer keyword value. */
static bool get_count(cctx_t *c, yajl_val v, const char *kw, uint64_t *out)
{
    if (!v) return true;
    num_t n;
    if (!YAJL_IS_NUMBER(v)) return cfail(c, kw), false;
    num_parse(v->u.number.r, &n);
    if (n.neg || !num_is_int(&n)) return cfail(c, kw), false;
    *out = num_u64(&n);
    return true;
}

static bool get_num(cctx_t *c, yajl_val v, const char *kw, num_t *out, bool *has)
{
    if (!v) return true;
    if (!YAJL_IS_NUMBER(v)) return cfail(c, kw), false;
    num_parse(v->u.number.r, out);
    *has = true;
    return true;
}

static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"null", T_NULL},     {"boolean", T_BOOL}, {"object", T_OBJ}, {"array", T_ARR},
    {"number", T_NUM},    {"string", T_STR},   {"integer", T_INT},
};

static unsigned type_bit(yajl_val v)
{
    if (!YAJL_IS_STRING(v)) return 0;
    for (size_t i = 0; i < AL_ARRAY_LEN(type_names); i++)
        if (strcmp(v->u.string, type_names[i].name) == 0) return type_names[i].bit;
    return 0;
}

static bool compile_types(cctx_t *c, yajl_val v, node_t *n)
{
    if (!v) return true;
    if (YAJL_IS_STRING(v)) {
        n->types = type_bit(v);
        return n->types ? true : (cfail(c, "type"), false);
    }
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0) return cfail(c, "type"), false;
    for (size_t i = 0; i < v->u.array.len; i++) {
        unsigned b = type_bit(v->u.array.values[i]);
        if (!b || (n->types & b)) return cfail(c, "type"), false;
        n->types |= b;
    }
    return true;
}

/* A non-empty array of schemas (allOf, anyOf, oneOf, prefixItems). */
static bool compile_list(cctx_t *c, yajl_val v, const char *kw, bool nonempty, node_t ***out,
                         size_t *nout)
{
    if (!v) return true;
    if (!YAJL_IS_ARRAY(v) || (nonempty && v->u.array.len == 0)) return cfail(c, kw), false;
    size_t old = path_push(c, kw, 0);
    node_t **list = al_calloc(v->u.array.len ? v->u.array.len : 1, sizeof(*list));
    *out = list;
    *nout = v->u.array.len;
    for (size_t i = 0; i < v->u.array.len; i++)
        if (!(list[i] = compile_sub(c, v->u.array.values[i], NULL, (long)i))) return false;
    path_pop(c, old);
    return true;
}

static int prop_cmp(const void *a, const void *b)
{
    const prop_t *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r) return r;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool compile_props(cctx_t *c, yajl_val props, yajl_val req, node_t *n)
{
    if (props && !YAJL_IS_OBJECT(props)) return cfail(c, "properties"), false;
    if (req && !YAJL_IS_ARRAY(req)) return cfail(c, "required"), false;
    size_t np = props ? props->u.object.len : 0, nr = req ? req->u.array.len : 0;
    if (np + nr == 0) return true;
    prop_t *t = al_calloc(np + nr, sizeof(*t));
    n->props = t;
    size_t k = 0;
    if (props) {
        size_t old = path_push(c, "properties", 0);
        for (size_t i = 0; i < np; i++, k++) {
            t[k].name = props->u.object.keys[i] ? props->u.object.keys[i] : "";
            t[k].order = k;
            if (!(t[k].schema = compile_sub(c, props->u.object.values[i], t[k].name, 0)))
                return false;
        }
        path_pop(c, old);
    }
    for (size_t i = 0; i < nr; i++, k++) {
        if (!YAJL_IS_STRING(req->u.array.values[i])) return cfail(c, "required"), false;
        t[k].name = req->u.array.values[i]->u.string;
        t[k].required = true;
        t[k].order = k;
    }
    qsort(t, k, sizeof(*t), prop_cmp);
    /* Merge runs of one name: the last schema wins, required if any is. */
    size_t out = 0;
    for (size_t i = 0; i < k;) {
        prop_t m = t[i];
        size_t j = i + 1;
        for (; j < k && strcmp(t[j].name, m.name) == 0; j++) {
            if (t[j].schema) m.schema = t[j].schema;
            m.required |= t[j].required;
        }
        if (m.required) n->any_required = true;
        t[out++] = m;
        i = j;
    }
    n->nprops = out;
    return true;
}

static bool compile_patprops(cctx_t *c, yajl_val v, node_t *n)
{
    if (!v) return true;
    if (!YAJL_IS_OBJECT(v)) return cfail(c, "patternProperties"), false;
    size_t old = path_push(c, "patternProperties", 0);
    n->patprops = al_calloc(v->u.object.len ? v->u.object.len : 1, sizeof(*n->patprops));
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *key = v->u.object.keys[i] ? v->u.object.keys[i] : "";
        int p = add_pattern(c, key);
        if (p < 0) return false;
        node_t *sub = compile_sub(c, v->u.object.values[i], key, 0);
        if (!sub) return false;
        n->patprops[n->npatprops].pat = (unsigned)p;
        n->patprops[n->npatprops++].schema = sub;
    }
    path_pop(c, old);
    return true;
}

static int enum_cmp(const void *a, const void *b)
{
    const enumv_t *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

static bool compile_enum(cctx_t *c, yajl_val v, node_t *n)
{
    if (!v) return true;
    if (!YAJL_IS_ARRAY(v)) return cfail(c, "enum"), false;
    n->has_enum = true;
    n->nenums = v->u.array.len;
    n->enums = al_calloc(n->nenums ? n->nenums : 1, sizeof(*n->enums));
    int64_t budget = INT64_MAX;
    for (size_t i = 0; i < n->nenums; i++) {
        n->enums[i].v = v->u.array.values[i];
        n->enums[i].h = vhash(n->enums[i].v, &budget);
    }
    qsort(n->enums, n->nenums, sizeof(*n->enums), enum_cmp);
    return true;
}

/* "#", "#/$defs/NAME" or "#/definitions/NAME" (a URI fragment holding a
 * JSON pointer: percent-decoding, then ~1 and ~0). */
static bool compile_ref(cctx_t *c, yajl_val v, node_t *n)
{
    if (!v) return true;
    if (!YAJL_IS_STRING(v)) return cfail(c, "$ref"), false;
    const char *r = v->u.string;
    if (strcmp(r, "#") == 0) {
        n->ref_def = REF_ROOT;
        return true;
    }
    int ns;
    const char *name;
    if (strncmp(r, "#/$defs/", 8) == 0) {
        ns = 0, name = r + 8;
    } else if (strncmp(r, "#/definitions/", 14) == 0) {
        ns = 1, name = r + 14;
    } else {
        return cfail(c, "$ref not supported (only \"#\" and \"#/$defs/NAME\")"), false;
    }
    size_t len = strlen(name);
    char *pct = al_malloc(len + 1), *dec = al_malloc(len + 1);
    size_t m = 0, d = 0;
    bool ok = true;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '%') {
            int hv = 0, good = i + 2 < len;
            for (size_t j = 1; good && j <= 2; j++) {
                char h = name[i + j];
                int x = h >= '0' && h <= '9' ? h - '0'
                      : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (x < 0) good = 0;
                hv = hv * 16 + (x < 0 ? 0 : x);
            }
            if (!good || hv == 0) {
                ok = false;
                break;
            }
            pct[m++] = (char)hv;
            i += 2;
        } else {
            pct[m++] = name[i];
        }
    }
    for (size_t i = 0; ok && i < m; i++) {
        if (pct[i] == '/') {
            ok = false;
        } else if (pct[i] == '~') {
            if (i + 1 < m && (pct[i + 1] == '0' || pct[i + 1] == '1')) {
                dec[d++] = pct[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                ok = false;
            }
        } else {
            dec[d++] = pct[i];
        }
    }
    dec[d] = '\0';
    free(pct);
    long found = -1;
    if (ok) {
        size_t lo = 0, hi = c->s->ndefs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const def_t *df = &c->s->defs[mid];
            int r2 = df->ns != ns ? (df->ns < ns ? -1 : 1) : strcmp(df->name, dec);
            if (r2 == 0) {
                found = (long)mid;
                break;
            }
            if (r2 < 0) lo = mid + 1;
            else hi = mid;
        }
    }
    free(dec);
    if (found < 0) return cfail(c, "$ref target not found"), false;
    n->ref_def = found;
    return true;
}

static node_t *compile_node(cctx_t *c, yajl_val v)
{
    al_schema_t *s = c->s;
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        node_t *n = node_new(s);
        if (YAJL_IS_FALSE(v)) n->flags |= N_FALSE;
        return n;
    }
    if (!YAJL_IS_OBJECT(v)) return cfail(c, "a schema must be an object or a boolean");
    node_t *n = node_new(s);
    yajl_val k;
    if (!compile_types(c, al_json_get(v, "type"), n)) return NULL;
    if ((k = al_json_get(v, "const"))) {
        n->flags |= N_CONST;
        n->konst = k;
    }
    if (!compile_enum(c, al_json_get(v, "enum"), n)) return NULL;

    numchk_t nc = {0};
    if (!get_num(c, al_json_get(v, "minimum"), "minimum", &nc.min, &nc.has_min) ||
        !get_num(c, al_json_get(v, "maximum"), "maximum", &nc.max, &nc.has_max) ||
        !get_num(c, al_json_get(v, "exclusiveMinimum"), "exclusiveMinimum", &nc.xmin,
                 &nc.has_xmin) ||
        !get_num(c, al_json_get(v, "exclusiveMaximum"), "exclusiveMaximum", &nc.xmax,
                 &nc.has_xmax))
        return NULL;
    if (nc.has_min || nc.has_max || nc.has_xmin || nc.has_xmax) {
        n->num = al_malloc(sizeof(*n->num));
        *n->num = nc;
    }
    if (!get_count(c, al_json_get(v, "minLength"), "minLength", &n->min_len) ||
        !get_count(c, al_json_get(v, "maxLength"), "maxLength", &n->max_len) ||
        !get_count(c, al_json_get(v, "minItems"), "minItems", &n->min_items) ||
        !get_count(c, al_json_get(v, "maxItems"), "maxItems", &n->max_items))
        return NULL;
    if ((k = al_json_get(v, "pattern"))) {
        if (!YAJL_IS_STRING(k)) return cfail(c, "pattern");
        size_t old = path_push(c, "pattern", 0);
        if ((n->pattern = add_pattern(c, k->u.string)) < 0) return NULL;
        path_pop(c, old);
    }
    if (!compile_props(c, al_json_get(v, "properties"), al_json_get(v, "required"), n) ||
        !compile_patprops(c, al_json_get(v, "patternProperties"), n))
        return NULL;
    if ((k = al_json_get(v, "additionalProperties")) &&
        !(n->additional = compile_sub(c, k, "additionalProperties", 0)))
        return NULL;
    yajl_val items = al_json_get(v, "items");
    if (YAJL_IS_ARRAY(items) && !al_json_get(v, "prefixItems")) {
        /* Draft-07 tuple form: items as prefixItems, additionalItems as items. */
        if (!compile_list(c, items, "items", false, &n->prefix, &n->nprefix)) return NULL;
        if ((k = al_json_get(v, "additionalItems")) &&
            !(n->items = compile_sub(c, k, "additionalItems", 0)))
            return NULL;
    } else {
        if (!compile_list(c, al_json_get(v, "prefixItems"), "prefixItems", false, &n->prefix,
                          &n->nprefix))
            return NULL;
        if (items && !(n->items = compile_sub(c, items, "items", 0))) return NULL;
    }
    if (!compile_list(c, al_json_get(v, "allOf"), "allOf", true, &n->all, &n->nall) ||
        !compile_list(c, al_json_get(v, "anyOf"), "anyOf", true, &n->any, &n->nany) ||
        !compile_list(c, al_json_get(v, "oneOf"), "oneOf", true, &n->one, &n->none))
        return NULL;
    if ((k = al_json_get(v, "not")) && !(n->not_ = compile_sub(c, k, "not", 0))) return NULL;
    size_t old = path_push(c, "$ref", 0);
    if (!compile_ref(c, al_json_get(v, "$ref"), n)) return NULL;
    path_pop(c, old);
    return n;
}

static int def_cmp(const void *a, const void *b)
{
    const def_t *x = a, *y = b;
    if (x->ns != y->ns) return x->ns < y->ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void collect_defs(al_schema_t *s, yajl_val root)
{
    yajl_val d[2] = {al_json_get(root, "$defs"), al_json_get(root, "definitions")};
    size_t n = 0;
    for (int ns = 0; ns < 2; ns++)
        if (YAJL_IS_OBJECT(d[ns])) n += d[ns]->u.object.len;
    if (!n) return;
    s->defs = al_calloc(n, sizeof(*s->defs));
    for (int ns = 0; ns < 2; ns++) {
        if (!YAJL_IS_OBJECT(d[ns])) continue;
        for (size_t i = 0; i < d[ns]->u.object.len; i++) {
            def_t *df = &s->defs[s->ndefs++];
            df->ns = ns;
            df->name = d[ns]->u.object.keys[i] ? d[ns]->u.object.keys[i] : "";
            df->v = d[ns]->u.object.values[i];
        }
    }
    qsort(s->defs, s->ndefs, sizeof(*s->defs), def_cmp);
}

/* Edges that evaluate another node on the same document value: $ref,
 * not, allOf, anyOf, oneOf. */
static size_t inplace_count(const node_t *n)
{
    return (n->ref != NULL) + (n->not_ != NULL) + n->nall + n->nany + n->none;
}

/* Iterative depth-first search for a cycle of in-place edges: such a
 * schema would recurse forever on any document. */
static bool has_inplace_cycle(al_schema_t *s)
{
    typedef struct frame {
        node_t *n;
        size_t next;
    } frame_t;
    frame_t *stack = al_malloc((s->nnodes + 1) * sizeof(*stack));
    bool cycle = false;
    for (size_t i = 0; i < s->nnodes && !cycle; i++) {
        if (s->nodes[i]->color) continue;
        size_t sp = 0;
        stack[sp++] = (frame_t){s->nodes[i], 0};
        s->nodes[i]->color = 1;
        while (sp && !cycle) {
            frame_t *f = &stack[sp - 1];
            if (f->next == inplace_count(f->n)) {
                f->n->color = 2;
                sp--;
                continue;
            }
            node_t *child = NULL;
            size_t idx = f->next++;
            /* idx-th in-place edge, without building the whole list */
            if (f->n->ref && idx == 0) child = f->n->ref;
            else {
                idx -= f->n->ref != NULL;
                if (f->n->not_ && idx == 0) child = f->n->not_;
                else {
                    idx -= f->n->not_ != NULL;
                    if (idx < f->n->nall) child = f->n->all[idx];
                    else if ((idx -= f->n->nall) < f->n->nany) child = f->n->any[idx];
                    else child = f->n->one[idx - f->n->nany];
                }
            }
            if (child->color == 1) cycle = true;
            else if (child->color == 0) {
                child->color = 1;
                stack[sp++] = (frame_t){child, 0};
            }
        }
    }
    free(stack);
    return cycle;
}

void al_schema_free(al_schema_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nnodes; i++) {
        node_t *n = s->nodes[i];
        free(n->num);
        free(n->props);
        free(n->patprops);
        free(n->prefix);
        free(n->all);
        free(n->any);
        free(n->one);
        free(n->enums);
        free(n);
    }
    free(s->nodes);
    free(s->defs);
    for (size_t i = 0; i < s->npats; i++) hs_free_database(s->pats[i].db);
    free(s->pats);
    yajl_tree_free(s->tree);
    free(s);
}

int al_schema_compile(const char *json, size_t len, al_schema_t **out, char *err, size_t errlen)
{
    *out = NULL;
    set_err(err, errlen, "%s", "");
    if (!json) return AL_EINVAL;
    if (len > SCHEMA_MAX_BYTES) {
        set_err(err, errlen, "schema larger than %u bytes", SCHEMA_MAX_BYTES);
        return AL_EINVAL;
    }
    const char *why = NULL;
    int rc = text_scan(json, len, SCHEMA_MAX_DEPTH, &why);
    if (rc != AL_OK) {
        set_err(err, errlen, "schema: %s", why);
        return rc;
    }
    al_schema_t *s = al_calloc(1, sizeof(*s));
    if ((rc = parse_tree(json, len, &s->tree)) != AL_OK) {
        set_err(err, errlen, "schema: %s", rc == AL_EPARSE ? "not JSON" : "out of memory");
        goto out;
    }
    cctx_t c = {.s = s, .err = err, .errlen = errlen, .path = "$", .plen = 1};
    collect_defs(s, s->tree);
    if (!(s->root = compile_node(&c, s->tree))) goto fail;
    for (size_t i = 0; i < s->ndefs; i++) {
        const char *kw = s->defs[i].ns ? "definitions" : "$defs";
        size_t o1 = path_push(&c, kw, 0);
        if (!(s->defs[i].node = compile_sub(&c, s->defs[i].v, s->defs[i].name, 0))) goto fail;
        path_pop(&c, o1);
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        node_t *n = s->nodes[i];
        if (n->ref_def == REF_ROOT) n->ref = s->root;
        else if (n->ref_def >= 0) n->ref = s->defs[n->ref_def].node;
    }
    if (has_inplace_cycle(s)) {
        path_pop(&c, 1);
        cfail(&c, "$ref cycle that never reaches into the document");
        goto fail;
    }
    s->serial = atomic_fetch_add(&next_serial, 1);
    *out = s;
    return AL_OK;
fail:
    rc = c.rc != AL_OK ? c.rc : AL_EINVAL;
out:
    al_schema_free(s);
    return rc;
}

/* --- validation --------------------------------------------------------- */

typedef struct seg {
    const char *key; /* NULL: an array index */
    size_t idx;
} seg_t;

typedef struct vctx {
    const al_schema_t *s;
    hs_scratch_t *scratch;
    int64_t budget;
    unsigned sdepth;
    int quiet;
    bool aborted, failed;
    char *err;
    size_t errlen;
    size_t depth;
    seg_t path[DOC_MAX_DEPTH + 4];
} vctx_t;

static _Thread_local hs_scratch_t *tls_scratch;
static _Thread_local uint64_t tls_serial;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_dtor(void *p)
{
    hs_free_scratch(p);
}

static void scratch_key_init(void)
{
    pthread_key_create(&scratch_key, scratch_dtor);
}

/* This thread's scratch, grown to fit every database of s. */
static int scratch_for(const al_schema_t *s, hs_scratch_t **out)
{
    *out = NULL;
    if (!s->npats) return AL_OK;
    if (!tls_scratch || tls_serial != s->serial) {
        pthread_once(&scratch_once, scratch_key_init);
        for (size_t i = 0; i < s->npats; i++)
            if (hs_alloc_scratch(s->pats[i].db, &tls_scratch) != HS_SUCCESS) return AL_ENOMEM;
        pthread_setspecific(scratch_key, tls_scratch);
        tls_serial = s->serial;
    }
    *out = tls_scratch;
    return AL_OK;
}

/* A member name is printed in the error path only when it is short and
 * plain, so a document cannot echo arbitrary text through it. */
static bool plain_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '$'))
            return false;
    }
    return true;
}

static void write_err(vctx_t *c, const char *kw)
{
    if (!c->err || !c->errlen) return;
    al_buf_t b;
    al_buf_init(&b, c->errlen > 1 ? c->errlen - 1 : 1);
    al_buf_putc(&b, '$');
    for (size_t i = 0; i < c->depth; i++) {
        const seg_t *sg = &c->path[i];
        if (!sg->key) al_buf_printf(&b, "[%zu]", sg->idx);
        else if (plain_key(sg->key)) al_buf_printf(&b, ".%s", sg->key);
        else al_buf_puts(&b, ".?");
    }
    al_buf_printf(&b, ": %s", kw);
    /* On overflow keep what fitted: a truncated path still helps. */
    size_t n = AL_MIN(b.len, c->errlen - 1);
    if (b.p) memcpy(c->err, b.p, n);
    c->err[n] = '\0';
    al_buf_free(&b);
}

static bool fail(vctx_t *c, const char *kw)
{
    if (!c->quiet && !c->failed && !c->aborted) {
        c->failed = true;
        write_err(c, kw);
    }
    return false;
}

static bool vabort(vctx_t *c, const char *why)
{
    /* Overrides quiet: running out of budget fails the whole document. */
    if (!c->aborted) {
        c->aborted = true;
        c->failed = true;
        write_err(c, why);
    }
    return false;
}

static void push_key(vctx_t *c, const char *k)
{
    AL_ASSERT(c->depth < AL_ARRAY_LEN(c->path));
    c->path[c->depth++] = (seg_t){k ? k : "", 0};
}

static void push_idx(vctx_t *c, size_t i)
{
    AL_ASSERT(c->depth < AL_ARRAY_LEN(c->path));
    c->path[c->depth++] = (seg_t){NULL, i};
}

static int match_cb(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    AL_UNUSED(id), AL_UNUSED(from), AL_UNUSED(to), AL_UNUSED(flags);
    *(bool *)ctx = true;
    return 1; /* stop at the first match */
}

/* 1 when pattern i matches somewhere in p/n, 0 when not, -1 on error
 * (invalid UTF-8 counts as no match: it cannot satisfy a UTF-8 pattern). */
static int pat_match(vctx_t *c, unsigned i, const char *p, size_t n)
{
    uint64_t cps;
    c->budget -= 32 + (int64_t)(n / 16); /* a scan costs ~30 steps */
    if (!utf8_count(p, n, &cps)) return 0;
    if (n > UINT32_MAX) return -1;
    bool hit = false;
    hs_error_t e = hs_scan(c->s->pats[i].db, p, (unsigned int)n, 0, c->scratch, match_cb, &hit);
    if (e != HS_SUCCESS && e != HS_SCAN_TERMINATED) return -1;
    return hit;
}

static bool eval(vctx_t *c, const node_t *n, yajl_val v);

static unsigned type_of(yajl_val v)
{
    switch (vtype(v)) {
    case yajl_t_string: return T_STR;
    case yajl_t_number: {
        num_t x;
        num_parse(v->u.number.r, &x);
        return num_is_int(&x) ? (T_NUM | T_INT) : T_NUM;
    }
    case yajl_t_object: return T_OBJ;
    case yajl_t_array: return T_ARR;
    case yajl_t_true:
    case yajl_t_false: return T_BOOL;
    default: return T_NULL;
    }
}

static bool eval_string(vctx_t *c, const node_t *n, yajl_val v)
{
    const char *str = v->u.string ? v->u.string : "";
    size_t len = strlen(str);
    if (n->min_len || n->max_len != UINT64_MAX) {
        uint64_t cps = 0;
        c->budget -= (int64_t)(len / 32);
        if (!utf8_count(str, len, &cps)) return fail(c, "minLength");
        if (cps < n->min_len) return fail(c, "minLength");
        if (cps > n->max_len) return fail(c, "maxLength");
    }
    if (n->pattern >= 0) {
        int m = pat_match(c, (unsigned)n->pattern, str, len);
        if (m < 0) return vabort(c, "pattern scan failed");
        if (!m) return fail(c, "pattern");
    }
    return true;
}

static bool eval_number(const node_t *n, yajl_val v, vctx_t *c)
{
    const numchk_t *k = n->num;
    num_t x;
    num_parse(v->u.number.r, &x);
    if (k->has_min && num_cmp(&x, &k->min) < 0) return fail(c, "minimum");
    if (k->has_max && num_cmp(&x, &k->max) > 0) return fail(c, "maximum");
    if (k->has_xmin && num_cmp(&x, &k->xmin) <= 0) return fail(c, "exclusiveMinimum");
    if (k->has_xmax && num_cmp(&x, &k->xmax) >= 0) return fail(c, "exclusiveMaximum");
    return true;
}

static const prop_t *find_prop(const node_t *n, const char *key)
{
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(n->props[mid].name, key);
        if (r == 0) return &n->props[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static bool eval_object(vctx_t *c, const node_t *n, yajl_val v)
{
    size_t len = v->u.object.len;
    if (n->any_required) {
        unsigned char small[64];
        size_t nb = (n->nprops + 7) / 8;
        unsigned char *seen = nb <= sizeof(small) ? small : al_calloc(nb, 1);
        if (seen == small) memset(small, 0, sizeof(small));
        for (size_t i = 0; i < len; i++) {
            c->budget--;
            const prop_t *p = find_prop(n, v->u.object.keys[i] ? v->u.object.keys[i] : "");
            if (p) {
                size_t at = (size_t)(p - n->props);
                seen[at / 8] |= (unsigned char)(1u << (at % 8));
            }
        }
        const char *missing = NULL;
        for (size_t i = 0; i < n->nprops && !missing; i++)
            if (n->props[i].required && !(seen[i / 8] & (1u << (i % 8))))
                missing = n->props[i].name;
        if (seen != small) free(seen);
        if (missing) {
            push_key(c, missing);
            fail(c, "required");
            c->depth--;
            return false;
        }
    }
    for (size_t i = 0; i < len; i++) {
        if (c->aborted || --c->budget < 0) return vabort(c, "too much work");
        const char *key = v->u.object.keys[i] ? v->u.object.keys[i] : "";
        yajl_val val = v->u.object.values[i];
        bool matched = false, ok = true;
        push_key(c, key);
        const prop_t *p = n->nprops ? find_prop(n, key) : NULL;
        if (p && p->schema) { /* a name only in "required" is not declared */
            matched = true;
            ok = eval(c, p->schema, val);
        }
        for (size_t j = 0; ok && j < n->npatprops; j++) {
            int m = pat_match(c, n->patprops[j].pat, key, strlen(key));
            if (m < 0) ok = vabort(c, "pattern scan failed");
            else if (m) {
                matched = true;
                ok = eval(c, n->patprops[j].schema, val);
            }
        }
        if (ok && !matched && n->additional) {
            if (n->additional->flags & N_FALSE) ok = fail(c, "additionalProperties");
            else ok = eval(c, n->additional, val);
        }
        c->depth--;
        if (!ok) return false;
    }
    return true;
}

static bool eval_array(vctx_t *c, const node_t *n, yajl_val v)
{
    size_t len = v->u.array.len;
    if (len < n->min_items) return fail(c, "minItems");
    if (len > n->max_items) return fail(c, "maxItems");
    if (!n->nprefix && !n->items) return true;
    for (size_t i = 0; i < len; i++) {
        const node_t *sub = i < n->nprefix ? n->prefix[i] : n->items;
        if (!sub) break;
        push_idx(c, i);
        bool ok = (sub->flags & N_FALSE) ? fail(c, i < n->nprefix ? "prefixItems" : "items")
                                         : eval(c, sub, v->u.array.values[i]);
        c->depth--;
        if (!ok) return false;
    }
    return true;
}

static bool in_enum(vctx_t *c, const node_t *n, yajl_val v)
{
    uint64_t h = vhash(v, &c->budget);
    size_t lo = 0, hi = n->nenums;
    while (lo < hi) { /* first entry with this hash */
        size_t mid = lo + (hi - lo) / 2;
        if (n->enums[mid].h < h) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i < n->nenums && n->enums[i].h == h && c->budget >= 0; i++)
        if (veq(n->enums[i].v, v, &c->budget)) return true;
    return false;
}

static bool eval_inner(vctx_t *c, const node_t *n, yajl_val v)
{
    if (n->flags & N_FALSE) return fail(c, "false");
    unsigned t = type_of(v);
    if (n->types && !(n->types & t)) return fail(c, "type");
    if (n->ref && !eval(c, n->ref, v)) return false;
    if ((n->flags & N_CONST) && !veq(n->konst, v, &c->budget))
        return c->budget < 0 ? vabort(c, "too much work") : fail(c, "const");
    if (n->has_enum && !in_enum(c, n, v))
        return c->budget < 0 ? vabort(c, "too much work") : fail(c, "enum");
    switch (vtype(v)) {
    case yajl_t_string:
        if (!eval_string(c, n, v)) return false;
        break;
    case yajl_t_number:
        if (n->num && !eval_number(n, v, c)) return false;
        break;
    case yajl_t_object:
        if ((n->nprops || n->npatprops || n->additional) && !eval_object(c, n, v)) return false;
        break;
    case yajl_t_array:
        if (!eval_array(c, n, v)) return false;
        break;
    default: break;
    }
    for (size_t i = 0; i < n->nall; i++)
        if (!eval(c, n->all[i], v)) return false;
    if (n->nany) {
        bool any = false;
        c->quiet++;
        for (size_t i = 0; i < n->nany && !any && !c->aborted; i++) any = eval(c, n->any[i], v);
        c->quiet--;
        if (c->aborted) return false;
        if (!any) return fail(c, "anyOf");
    }
    if (n->none) {
        size_t hits = 0;
        c->quiet++;
        for (size_t i = 0; i < n->none && hits < 2 && !c->aborted; i++)
            hits += eval(c, n->one[i], v);
        c->quiet--;
        if (c->aborted) return false;
        if (hits != 1) return fail(c, "oneOf");
    }
    if (n->not_) {
        c->quiet++;
        bool inner = eval(c, n->not_, v);
        c->quiet--;
        if (c->aborted) return false;
        if (inner) return fail(c, "not");
    }
    return true;
}

static bool eval(vctx_t *c, const node_t *n, yajl_val v)
{
    if (c->aborted) return false;
    if (--c->budget < 0) return vabort(c, "too much work");
    if (c->sdepth >= EVAL_MAX_DEPTH) return vabort(c, "schema nesting too deep");
    c->sdepth++;
    bool ok = eval_inner(c, n, v);
    c->sdepth--;
    return ok && !c->aborted;
}

int al_schema_validate(const al_schema_t *s, const char *json, size_t len, char *err,
                       size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (!s || !json) return AL_EINVAL;
    const char *why = NULL;
    int rc = text_scan(json, len, DOC_MAX_DEPTH, &why);
    if (rc != AL_OK) {
        set_err(err, errlen, "$: %s", rc == AL_EPARSE ? "not JSON" : why);
        return rc;
    }
    yajl_val doc = NULL;
    if ((rc = parse_tree(json, len, &doc)) != AL_OK) {
        set_err(err, errlen, "$: %s", rc == AL_EPARSE ? "not JSON" : "out of memory");
        return rc == AL_EPARSE ? AL_EPARSE : AL_EINVAL;
    }
    vctx_t *c = al_calloc(1, sizeof(*c));
    c->s = s;
    c->err = err;
    c->errlen = errlen;
    c->budget = BUDGET_BASE;
    if (len > (size_t)(INT64_MAX / 2 / BUDGET_PER_BYTE)) c->budget = INT64_MAX / 2;
    else c->budget += (int64_t)len * BUDGET_PER_BYTE;
    if (scratch_for(s, &c->scratch) != AL_OK) {
        set_err(err, errlen, "$: out of memory");
        rc = AL_EINVAL;
        goto out;
    }
    rc = eval(c, s->root, doc) && !c->aborted ? AL_OK : AL_EINVAL;
out:
    free(c);
    yajl_tree_free(doc);
    return rc;
}
