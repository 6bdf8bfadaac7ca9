/* canon.c - canonical JSON (see canon.h for the spelling it produces).
 * A single-pass recursive-descent parser reads the input with a cursor that
 * never passes `end` and writes the canonical text straight into the
 * caller's al_buf_t.  The canonical form is never longer than its input
 * (whitespace goes, escapes only shrink or keep their length), so one
 * up-front reservation of min(len, room under the cap) is enough and the
 * writer only checks a limit pointer; when all of the input fits, string
 * bodies are also copied eight bytes at a time, stored before they are
 * checked for the bytes that need a look (the output cursor trails the
 * input one, so such stores always land in reserved room).  Objects are written in input order
 * while each member's span ("key":value, offsets into the output) is pushed
 * on a member stack; when the object closes, its members are sorted by
 * index (insertion sort for small objects, merge sort above that; keys are
 * compared on their unescaped bytes, decoding the few escapes a canonical
 * key can hold only when one is present), adjacent equal keys are refused,
 * and, unless the input order was already right, the object's body is
 * copied to a scratch area and written back in order.  Small member stacks
 * and scratch areas live on the C stack; larger ones are heap-grown.  On a
 * parse error out is left as it was; on AL_ETOOBIG / AL_ENOMEM its sticky
 * error is set, as any al_buf append would.  al_json_is_canon canonicalizes
 * into a private buffer and compares, so the two can never disagree. */
#include "util/canon.h"

#include <stdlib.h>
#include <string.h>

typedef struct member {
    size_t start;   /* offset of the key's opening quote in the output */
    size_t kend;    /* offset just past the key's closing quote */
    size_t end;     /* offset just past the value */
    bool esc;       /* the canonical key holds a backslash escape */
} member_t;

#define SMALL_MEMBERS 64
#define SMALL_SCRATCH 4096

typedef struct canon {
    const unsigned char *p, *end;   /* input cursor and its limit */
    char *obase, *o, *olim;         /* output start, cursor, limit */
    member_t *mem;                  /* member stack */
    size_t nmem, memcap;
    member_t *tmp;                  /* merge sort scratch */
    size_t tmpcap;
    char *scr;                      /* object body scratch */
    size_t scrcap;
    int depth;
    bool roomy;                     /* room for all input: writes cannot fail */
    member_t mem_small[SMALL_MEMBERS];
    member_t tmp_small[SMALL_MEMBERS];
    char scr_small[SMALL_SCRATCH];
} canon_t;

/* Byte classes inside a string: 0 plain ASCII copied as is, 1 needs a look. */
static const unsigned char str_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline void skip_ws(canon_t *c)
{
    while (c->p < c->end && is_ws(*c->p)) c->p++;
}

static inline int put(canon_t *c, const void *s, size_t n)
{
    if (n > (size_t)(c->olim - c->o)) return AL_ETOOBIG;
    memcpy(c->o, s, n);
    c->o += n;
    return AL_OK;
}

static inline int put1(canon_t *c, char ch)
{
    if (c->o >= c->olim) return AL_ETOOBIG;
    *c->o++ = ch;
    return AL_OK;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0: overlong forms,
 * UTF-16 surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char b = p[0];
    if (b >= 0xC2 && b <= 0xDF) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (b >= 0xE0 && b <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (b == 0xE0 && p[1] < 0xA0) return 0;
        if (b == 0xED && p[1] > 0x9F) return 0;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (b == 0xF0 && p[1] < 0x90) return 0;
        if (b == 0xF4 && p[1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char h = p[i];
        unsigned d;
        if (h >= '0' && h <= '9') d = h - '0';
        else if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
        else if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
        else return AL_EPARSE;
        v = v << 4 | d;
    }
    *out = v;
    return AL_OK;
}

/* Write code point cp (already checked: not a surrogate, <= 0x10FFFF) in
 * its canonical spelling; *esc is set when that spelling is an escape. */
static int put_cp(canon_t *c, unsigned cp, bool *esc)
{
    static const char hex[] = "0123456789abcdef";
    char b[6];
    size_t n;
    if (cp < 0x20 || cp == '"' || cp == '\\') {
        *esc = true;
        b[0] = '\\';
        switch (cp) {
        case '"': b[1] = '"'; n = 2; break;
        case '\\': b[1] = '\\'; n = 2; break;
        case '\b': b[1] = 'b'; n = 2; break;
        case '\f': b[1] = 'f'; n = 2; break;
        case '\n': b[1] = 'n'; n = 2; break;
        case '\r': b[1] = 'r'; n = 2; break;
        case '\t': b[1] = 't'; n = 2; break;
        default:
            b[1] = 'u';
            b[2] = '0';
            b[3] = '0';
            b[4] = hex[cp >> 4];
            b[5] = hex[cp & 15];
            n = 6;
        }
    } else if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return put(c, b, n);
}

/* The escape after a backslash (c->p is on the backslash). */
static int escape(canon_t *c, bool *esc)
{
    const unsigned char *p = c->p + 1;
    unsigned cp, lo;
    if (p >= c->end) return AL_EPARSE;
    switch (*p) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
        if (c->end - p < 5 || hex4(p + 1, &cp) != AL_OK) return AL_EPARSE;
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return AL_EPARSE;   /* lone low half */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (c->end - p < 7 || p[1] != '\\' || p[2] != 'u' || hex4(p + 3, &lo) != AL_OK ||
                lo < 0xDC00 || lo > 0xDFFF)
                return AL_EPARSE;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        break;
    default:
        return AL_EPARSE;
    }
    c->p = p + 1;
    return put_cp(c, cp, esc);
}

/* High bit set in each byte of x that is a control character, '"', '\\'
 * or >= 0x80 (exact for the lowest such byte, which is all that is used). */
static inline uint64_t swar_special(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    return (x & high) | ((x - ones * 0x20) & ~x & high) | ((q - ones) & ~q & high) |
           ((b - ones) & ~b & high);
}

/* A string (c->p is on its opening quote); *esc tells whether the
 * canonical spelling holds an escape. */
static int string(canon_t *c, bool *esc)
{
    int rc;
    *esc = false;
    c->p++;
    if ((rc = put1(c, '"')) != AL_OK) return rc;
    for (;;) {
        const unsigned char *s = c->p, *e = c->end, *p = s;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (c->roomy) {
            /* Eight bytes at a time, stored before they are checked: the
             * output cursor trails the input one, so the room left is at
             * least the input left (>= 8 here). */
            char *o = c->o;
            while (e - p >= 8) {
                uint64_t x;
                memcpy(&x, p, 8);
                memcpy(o, &x, 8);
                uint64_t m = swar_special(x);
                if (m) {
                    size_t k = (size_t)__builtin_ctzll(m) >> 3;
                    p += k;
                    o += k;
                    break;
                }
                p += 8;
                o += 8;
            }
            c->o = o;
            s = p;
        }
#endif
        while (p + 4 <= e && !(str_special[p[0]] | str_special[p[1]] | str_special[p[2]] |
                               str_special[p[3]]))
            p += 4;
        while (p < e && !str_special[*p]) p++;
        c->p = p;
        if ((rc = put(c, s, (size_t)(p - s))) != AL_OK) return rc;
        if (p >= e) return AL_EPARSE;
        unsigned char ch = *p;
        if (ch == '"') {
            c->p++;
            return put1(c, '"');
        } else if (ch == '\\') {
            if ((rc = escape(c, esc)) != AL_OK) return rc;
        } else if (ch < 0x20) {
            return AL_EPARSE;
        } else {
            size_t n = utf8_seq(p, (size_t)(e - p));
            if (n == 0) return AL_EPARSE;
            if ((rc = put(c, p, n)) != AL_OK) return rc;
            c->p += n;
        }
    }
}

static int number(canon_t *c)
{
    const unsigned char *s = c->p, *p = s, *e = c->end;
    if (*p == '-') p++;
    if (p >= e) return AL_EPARSE;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && is_digit(*p)) p++;
    } else {
        return AL_EPARSE;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !is_digit(*p)) return AL_EPARSE;
        while (p < e && is_digit(*p)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || !is_digit(*p)) return AL_EPARSE;
        while (p < e && is_digit(*p)) p++;
    }
    c->p = p;
    return put(c, s, (size_t)(p - s));
}

static int literal(canon_t *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return AL_EPARSE;
    c->p += n;
    return put(c, lit, n);
}

/* Next unescaped byte of a canonical key at *k (below kend), advancing. */
static unsigned key_byte(const char **k)
{
    const unsigned char *p = (const unsigned char *)*k;
    if (*p != '\\') {
        *k += 1;
        return *p;
    }
    *k += 2;
    switch (p[1]) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': {
        /* Canonical \u escapes are \u00XX, lower-case hex. */
        unsigned hi = p[4] <= '9' ? p[4] - '0' : p[4] - 'a' + 10;
        unsigned lo = p[5] <= '9' ? p[5] - '0' : p[5] - 'a' + 10;
        *k += 4;
        return hi << 4 | lo;
    }
    default: return p[1];   /* '"' or '\\' */
    }
}

/* Byte-wise order of the unescaped keys of a and b. */
static int key_cmp(const char *base, const member_t *a, const member_t *b)
{
    const char *ka = base + a->start + 1, *ea = base + a->kend - 1;
    const char *kb = base + b->start + 1, *eb = base + b->kend - 1;
    if (!a->esc && !b->esc) {
        /* Keys are short: a byte loop beats a call to memcmp. */
        size_t la = (size_t)(ea - ka), lb = (size_t)(eb - kb), n = la < lb ? la : lb;
        for (size_t i = 0; i < n; i++) {
            unsigned char x = (unsigned char)ka[i], y = (unsigned char)kb[i];
            if (x != y) return x < y ? -1 : 1;
        }
        return la < lb ? -1 : la > lb;
    }
    while (ka < ea && kb < eb) {
        unsigned x = key_byte(&ka), y = key_byte(&kb);
        if (x != y) return x < y ? -1 : 1;
    }
    return ka < ea ? 1 : kb < eb ? -1 : 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem, void *small)
{
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem) return AL_ENOMEM;
        ncap *= 2;
    }
    void *np;
    if (*arr == small) {
        np = malloc(ncap * elem);
        if (np && *cap) memcpy(np, small, *cap * elem);
    } else {
        np = realloc(*arr, ncap * elem);
    }
    if (!np) return AL_ENOMEM;
    *arr = np;
    *cap = ncap;
    return AL_OK;
}

static void merge_sort(const char *base, member_t *m, member_t *tmp, size_t n)
{
    if (n <= 12) {
        for (size_t i = 1; i < n; i++) {
            member_t x = m[i];
            size_t j = i;
            while (j > 0 && key_cmp(base, &m[j - 1], &x) > 0) {
                m[j] = m[j - 1];
                j--;
            }
            m[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(base, m, tmp, h);
    merge_sort(base, m + h, tmp, n - h);
    if (key_cmp(base, &m[h - 1], &m[h]) <= 0) return;
    memcpy(tmp, m, h * sizeof *m);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) m[k++] = key_cmp(base, &tmp[i], &m[j]) <= 0 ? tmp[i++] : m[j++];
    while (i < h) m[k++] = tmp[i++];
}

/* Sort the members of the object just read (mem[from..nmem)), refuse
 * duplicates and rewrite the body in order. */
static int finish_object(canon_t *c, size_t from)
{
    member_t *m = c->mem + from;
    size_t n = c->nmem - from;
    bool sorted = true;
    int rc;
    for (size_t i = 1; i < n; i++) {
        int r = key_cmp(c->obase, &m[i - 1], &m[i]);
        if (r == 0) return AL_EPARSE;
        if (r > 0) {
            sorted = false;
            break;
        }
    }
    if (sorted) return AL_OK;
    if (n > c->tmpcap &&
        (rc = grow((void **)&c->tmp, &c->tmpcap, n, sizeof *m, c->tmp_small)) != AL_OK)
        return rc;
    merge_sort(c->obase, m, c->tmp, n);
    for (size_t i = 1; i < n; i++)
        if (key_cmp(c->obase, &m[i - 1], &m[i]) == 0) return AL_EPARSE;
    /* Members sit in input order between the first start and the furthest
     * end; copy that body aside and write it back sorted. */
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].start < lo) lo = m[i].start;
        if (m[i].end > hi) hi = m[i].end;
    }
    size_t blen = hi - lo;
    if (blen > c->scrcap &&
        (rc = grow((void **)&c->scr, &c->scrcap, blen, 1, c->scr_small)) != AL_OK)
        return rc;
    memcpy(c->scr, c->obase + lo, blen);
    char *w = c->obase + lo;
    for (size_t i = 0; i < n; i++) {
        size_t l = m[i].end - m[i].start;
        if (i) *w++ = ',';
        memcpy(w, c->scr + (m[i].start - lo), l);
        w += l;
    }
    return AL_OK;
}

static int value(canon_t *c);

static int object(canon_t *c)
{
    int rc;
    size_t from = c->nmem;
    c->p++;
    if ((rc = put1(c, '{')) != AL_OK) return rc;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return put1(c, '}');
    }
    for (;;) {
        member_t m;
        skip_ws(c);
        if (c->p >= c->end || *c->p != '"') return AL_EPARSE;
        m.start = (size_t)(c->o - c->obase);
        if ((rc = string(c, &m.esc)) != AL_OK) return rc;
        m.kend = (size_t)(c->o - c->obase);
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') return AL_EPARSE;
        c->p++;
        if ((rc = put1(c, ':')) != AL_OK) return rc;
        if ((rc = value(c)) != AL_OK) return rc;
        m.end = (size_t)(c->o - c->obase);
        if (c->nmem == c->memcap &&
            (rc = grow((void **)&c->mem, &c->memcap, c->nmem + 1, sizeof m, c->mem_small)) !=
                AL_OK)
            return rc;
        c->mem[c->nmem++] = m;
        skip_ws(c);
        if (c->p >= c->end) return AL_EPARSE;
        if (*c->p == ',') {
            c->p++;
            if ((rc = put1(c, ',')) != AL_OK) return rc;
            continue;
        }
        if (*c->p != '}') return AL_EPARSE;
        c->p++;
        break;
    }
    rc = finish_object(c, from);
    c->nmem = from;
    if (rc != AL_OK) return rc;
    return put1(c, '}');
}

static int array(canon_t *c)
{
    int rc;
    c->p++;
    if ((rc = put1(c, '[')) != AL_OK) return rc;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return put1(c, ']');
    }
    for (;;) {
        if ((rc = value(c)) != AL_OK) return rc;
        skip_ws(c);
        if (c->p >= c->end) return AL_EPARSE;
        if (*c->p == ',') {
            c->p++;
            if ((rc = put1(c, ',')) != AL_OK) return rc;
            continue;
        }
        if (*c->p != ']') return AL_EPARSE;
        c->p++;
        return put1(c, ']');
    }
}

/* Any value, leading whitespace skipped. */
static int value(canon_t *c)
{
    int rc;
    bool esc;
    skip_ws(c);
    if (c->p >= c->end) return AL_EPARSE;
    switch (*c->p) {
    case '{':
    case '[':
        if (++c->depth > AL_CANON_MAX_DEPTH) return AL_EPARSE;
        rc = *c->p == '{' ? object(c) : array(c);
        c->depth--;
        return rc;
    case '"': return string(c, &esc);
    case 't': return literal(c, "true", 4);
    case 'f': return literal(c, "false", 5);
    case 'n': return literal(c, "null", 4);
    default:
        if (*c->p == '-' || is_digit(*c->p)) return number(c);
        return AL_EPARSE;
    }
}

int al_json_canon(const char *in, size_t len, al_buf_t *out)
{
    canon_t c;
    int rc;
    if (out->err) return out->err;
    if (!in) {
        if (len) return AL_EINVAL;
        in = "";
    }
    /* The output never outgrows the input: reserve once, capped. */
    size_t room = out->max >= out->len ? out->max - out->len : 0;
    if ((rc = al_buf_reserve(out, len < room ? len : room)) != AL_OK) return rc;
    c.p = (const unsigned char *)in;
    c.end = c.p + len;
    c.obase = c.o = out->p + out->len;
    c.olim = c.obase + (len < room ? len : room);
    c.mem = c.mem_small;
    c.memcap = SMALL_MEMBERS;
    c.nmem = 0;
    c.tmp = c.tmp_small;
    c.tmpcap = SMALL_MEMBERS;
    c.roomy = len <= room;
    c.scr = c.scr_small;
    c.scrcap = SMALL_SCRATCH;
    c.depth = 0;

    rc = value(&c);
    if (rc == AL_OK) {
        skip_ws(&c);
        if (c.p != c.end) rc = AL_EPARSE;
    }
    if (c.mem != c.mem_small) free(c.mem);
    if (c.scr != c.scr_small) free(c.scr);
    if (c.tmp != c.tmp_small) free(c.tmp);
    if (rc == AL_OK) {
        out->len += (size_t)(c.o - c.obase);
    } else if (rc == AL_ETOOBIG || rc == AL_ENOMEM) {
        out->err = rc;
    }
    out->p[out->len] = '\0';
    return rc;
}

bool al_json_is_canon(const char *in, size_t len)
{
    char small[2048];
    al_buf_t b;
    bool ok;
    if (!in) return false;
    /* A canonical text is reproduced byte for byte, so the output can be
     * capped at len: anything longer already differs. */
    if (len < sizeof small) {
        b.p = small;
        b.cap = sizeof small;
        b.len = 0;
        b.max = len;
        b.err = 0;
        ok = al_json_canon(in, len, &b) == AL_OK && b.len == len && memcmp(b.p, in, len) == 0;
        return ok;
    }
    al_buf_init(&b, len);
    ok = al_json_canon(in, len, &b) == AL_OK && b.len == len && memcmp(b.p, in, len) == 0;
    al_buf_free(&b);
    return ok;
}
