/* config.c - loads airlock's YAML configuration into an immutable snapshot.
 *
 * libfyaml parses the text into a document tree; a schema walk then copies
 * every value into an al_config_t and checks it on the way.  Each mapping in
 * the schema is a small table of fields (key, kind, bounds, offset into the
 * target struct or a handler), so adding an option is one table row.  Scalars
 * are typed by the YAML 1.2 core schema (plain `5` is an integer, quoted "5"
 * a string) and an explicit !!str tag forces a string.  Aliases (*name) are
 * followed; merge keys (<<) and other tags are refused.  Every node visit is
 * counted against a budget so aliases cannot blow up the walk.  Sections are
 * processed escalation -> providers -> models -> routes -> teams -> agents
 * whatever their order in the file, so references always point backwards (a
 * route's targets are models, an agent's list names models and routes and
 * its `team` a teams entry, a route's own escalation starts from the
 * top-level one); names are then found through small open-addressing hash
 * tables kept beside the public struct.  Durations are "250ms", "30s", "5m",
 * "2h", "1d" or plain integers in milliseconds.  The `tokens` section names
 * the variable whose value is hashed (SHA-256) into the token signing key;
 * without one the key is random.  Loaded through an environment hook (the
 * CLI's, which reads missing variables as "") a missing or short signing
 * key is not an error either: the key is then random too, since key and
 * event commands never sign tokens.  The first problem stops the load and
 * becomes one line, "FILE:LINE: key.path: reason", with a "did you mean"
 * hint when a close name exists. */
#include "config/config.h"
#include "guard/policy.h"
#include "util/common.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_FILE_MAX (16u << 20)     /* bytes of YAML we accept */
#define CFG_VISITS_MAX 1000000ul     /* node visits, alias expansion included */
#define CFG_PATH_MAX 320             /* dotted key path in messages */
#define CFG_HEADERS_MAX 256          /* per provider, headers and forward_headers */
#define CFG_SHOW_MAX 64              /* bytes of a value quoted in a message */
#define CFG_TARGETS_MAX 16           /* per route */
#define CFG_URL_MAX 2048             /* alerts.webhook_url */
#define CFG_ONCALL_MAX 256           /* agents.*.oncall */
#define CFG_CLASS_MAX 64             /* agents.*.data_classification */
#define CFG_TOKEN_KEY_MIN 32         /* bytes of tokens.signing_key_env's value */

/* ---- private state -------------------------------------------------- */

typedef struct name_index {
    uint32_t *slot;                  /* entry index + 1; 0 = empty */
    size_t mask;
} name_index_t;

/* The snapshot as allocated: the public struct first, so an al_config_t *
 * converts back, then the lookup tables nobody else needs to see. */
typedef struct cfg_impl {
    al_config_t pub;
    name_index_t providers, models, agents, routes, teams;
} cfg_impl_t;

typedef struct ctx {
    const char *file;                /* name used in messages */
    const char *buf;                 /* the YAML text */
    size_t len;
    char *err;
    size_t errlen;
    al_getenv_fn env;
    cfg_impl_t *im;
    uint32_t *stamp;                 /* per model: agent index + 1 that listed it last */
    uint32_t *rstamp;                /* the same per route */
    int *model_lines;                /* per model: line of its key, for clash messages */
    size_t n_model_lines;
    bool has_teams;                  /* a top-level `teams` key is present */
    unsigned long visits;
    size_t plen;
    char path[CFG_PATH_MAX];
} ctx_t;

static al_config_t *cfgof(ctx_t *x) { return &x->im->pub; }

/* ---- messages ------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int fail(ctx_t *x, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!x->err || x->errlen == 0) return AL_EINVAL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line < 1) line = 1;
    if (x->plen)
        snprintf(x->err, x->errlen, "%s:%d: %s: %s", x->file, line, x->path, msg);
    else
        snprintf(x->err, x->errlen, "%s:%d: %s", x->file, line, msg);
    /* One line, printable: values in the message come from the file. */
    for (char *p = x->err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return AL_EINVAL;
}

/* Append ".key" (or "key" at the root) to the path; returns the length to
 * restore with path_pop.  Long keys are shortened: the path is for people. */
static size_t path_push(ctx_t *x, const char *k, size_t len)
{
    size_t mark = x->plen;
    int n = snprintf(x->path + x->plen, sizeof x->path - x->plen, "%s%.*s%s",
                     x->plen ? "." : "", (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), k,
                     len > CFG_SHOW_MAX ? "..." : "");
    if (n > 0) x->plen = AL_MIN(x->plen + (size_t)n, sizeof x->path - 1);
    return mark;
}

static size_t path_push_index(ctx_t *x, size_t i)
{
    size_t mark = x->plen;
    int n = snprintf(x->path + x->plen, sizeof x->path - x->plen, "[%zu]", i);
    if (n > 0) x->plen = AL_MIN(x->plen + (size_t)n, sizeof x->path - 1);
    return mark;
}

static void path_pop(ctx_t *x, size_t mark)
{
    x->plen = mark;
    x->path[mark] = '\0';
}

/* Edit distance counting a swap of two neighbours as one edit (optimal
 * string alignment), or a large number for strings too long to matter. */
static size_t edit_distance(const char *a, size_t al, const char *b, size_t bl)
{
    uint8_t d[CFG_SHOW_MAX + 1][CFG_SHOW_MAX + 1];

    if (al > CFG_SHOW_MAX || bl > CFG_SHOW_MAX) return SIZE_MAX;
    for (size_t i = 0; i <= al; i++) d[i][0] = (uint8_t)i;
    for (size_t j = 0; j <= bl; j++) d[0][j] = (uint8_t)j;
    for (size_t i = 1; i <= al; i++) {
        for (size_t j = 1; j <= bl; j++) {
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned v = AL_MIN(AL_MIN(d[i - 1][j] + 1u, d[i][j - 1] + 1u), d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = AL_MIN(v, d[i - 2][j - 2] + 1u);
            d[i][j] = (uint8_t)v;
        }
    }
    return d[al][bl];
}

/* Tracks the closest candidate; hint() renders " (did you mean 'x'?)". */
typedef struct suggest {
    const char *want;
    size_t wlen;
    const char *best;
    size_t dist;
} suggest_t;

static void suggest_init(suggest_t *s, const char *want, size_t wlen)
{
    s->want = want;
    s->wlen = wlen;
    s->best = NULL;
    s->dist = SIZE_MAX;
}

static void suggest_try(suggest_t *s, const char *cand)
{
    if (!cand) return;
    size_t d = edit_distance(s->want, s->wlen, cand, strlen(cand));
    size_t limit = s->wlen <= 4 ? 1 : s->wlen <= 8 ? 2 : 3;
    if (d > 0 && d <= limit && d < s->dist) {
        s->best = cand;
        s->dist = d;
    }
}

static const char *suggest_hint(const suggest_t *s, char *buf, size_t len)
{
    if (!s->best) return "";
    snprintf(buf, len, " (did you mean '%s'?)", s->best);
    return buf;
}

/* ---- reading nodes -------------------------------------------------- */

enum vtype { V_NULL, V_BOOL, V_INT, V_FLOAT, V_STR, V_MAP, V_SEQ };
static const char *const vtype_name[] = {
    "null", "a boolean", "an integer", "a number", "a string", "a mapping", "a list",
};

static int node_line(struct fy_node *n, int fallback)
{
    if (n && fy_node_get_type(n) == FYNT_SCALAR) {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        if (m && m->line >= 0) return m->line + 1;
    }
    return fallback;
}

static const char *scalar_text(struct fy_node *n, size_t *len)
{
    const char *p = n ? fy_node_get_scalar(n, len) : NULL;
    if (!p) {
        *len = 0;
        return "";
    }
    return p;
}

/* Follow an alias and count the visit. */
static int deref(ctx_t *x, struct fy_node **n, int line)
{
    if (++x->visits > CFG_VISITS_MAX)
        return fail(x, line, "too many nodes (aliases expand to more than %lu)",
                    CFG_VISITS_MAX);
    if (*n && fy_node_is_alias(*n)) {
        struct fy_node *r = fy_node_resolve_alias(*n);
        if (!r) {
            size_t len;
            const char *p = scalar_text(*n, &len);
            return fail(x, line, "alias '*%.*s' does not resolve (unknown anchor or a loop)",
                        (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
        }
        *n = r;
    }
    return 0;
}

static bool text_is(const char *p, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(p, lit, len) == 0;
}

static bool all_digits(const char *p, size_t len, int base)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool ok = base == 8    ? (c >= '0' && c <= '7')
                  : base == 10 ? (c >= '0' && c <= '9')
                               : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                                  (c >= 'A' && c <= 'F'));
        if (!ok) return false;
    }
    return true;
}

static bool is_int_text(const char *p, size_t len)
{
    if (len > 2 && p[0] == '0' && (p[1] == 'o' || p[1] == 'x'))
        return all_digits(p + 2, len - 2, p[1] == 'o' ? 8 : 16);
    if (len && (p[0] == '-' || p[0] == '+')) p++, len--;
    return all_digits(p, len, 10);
}

static bool is_float_text(const char *p, size_t len)
{
    size_t i = 0, digits = 0;

    if (len && (p[0] == '-' || p[0] == '+')) i++;
    if (text_is(p + i, len - i, ".inf") || text_is(p + i, len - i, ".Inf") ||
        text_is(p + i, len - i, ".INF"))
        return true;
    if (text_is(p, len, ".nan") || text_is(p, len, ".NaN") || text_is(p, len, ".NAN"))
        return true;
    while (i < len && p[i] >= '0' && p[i] <= '9') i++, digits++;
    if (i < len && p[i] == '.') {
        i++;
        while (i < len && p[i] >= '0' && p[i] <= '9') i++, digits++;
    }
    if (digits == 0) return false;
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        size_t e = 0;
        i++;
        if (i < len && (p[i] == '-' || p[i] == '+')) i++;
        while (i < len && p[i] >= '0' && p[i] <= '9') i++, e++;
        if (e == 0) return false;
    }
    return i == len;
}

/* libfyaml 0.7.12 decodes two escaped quotes in a row in a single-quoted
 * scalar ('it''''s') wrongly and leaks while doing it (fixed upstream in
 * c0a716e), so such scalars are refused before their text is read.  The
 * token's marks span the text between the quotes. */
static int check_quotes(ctx_t *x, struct fy_node *n, int line)
{
    struct fy_token *t;
    const struct fy_mark *s, *e;
    unsigned run = 0;

    if (!n || fy_node_get_type(n) != FYNT_SCALAR || fy_node_get_style(n) != FYNS_SINGLE_QUOTED)
        return 0;
    t = fy_node_get_scalar_token(n);
    s = t ? fy_token_start_mark(t) : NULL;
    e = t ? fy_token_end_mark(t) : NULL;
    if (!s || !e || s->input_pos > e->input_pos || e->input_pos > x->len) return 0;
    for (size_t i = s->input_pos; i < e->input_pos; i++) {
        run = x->buf[i] == '\'' ? run + 1 : 0;
        if (run >= 4)
            return fail(x, line, "two escaped quotes in a row ('''') are not supported in "
                        "single-quoted strings; use double quotes");
    }
    return 0;
}

/* Type of an already dereferenced node, YAML 1.2 core schema. */
static int classify(ctx_t *x, struct fy_node *n, int line, int *out)
{
    size_t tlen = 0, len;
    const char *tag, *p;
    int rc;

    if (!n) {
        *out = V_NULL;
        return 0;
    }
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING: *out = V_MAP; break;
    case FYNT_SEQUENCE: *out = V_SEQ; break;
    default:
        if ((rc = check_quotes(x, n, line))) return rc;
        tag = fy_node_get_tag(n, &tlen);
        p = scalar_text(n, &len);
        if (tag && tlen) {
            if (!text_is(tag, tlen, "tag:yaml.org,2002:str"))
                return fail(x, line, "unsupported YAML tag '%.*s' (only !!str is allowed)",
                            (int)AL_MIN(tlen, (size_t)CFG_SHOW_MAX), tag);
            *out = V_STR;
        } else if (fy_node_get_style(n) != FYNS_PLAIN) {
            *out = V_STR;
        } else if (len == 0 || text_is(p, len, "~") || text_is(p, len, "null") ||
                   text_is(p, len, "Null") || text_is(p, len, "NULL")) {
            *out = V_NULL;
        } else if (text_is(p, len, "true") || text_is(p, len, "True") ||
                   text_is(p, len, "TRUE") || text_is(p, len, "false") ||
                   text_is(p, len, "False") || text_is(p, len, "FALSE")) {
            *out = V_BOOL;
        } else if (is_int_text(p, len)) {
            *out = V_INT;
        } else if (is_float_text(p, len)) {
            *out = V_FLOAT;
        } else {
            *out = V_STR;
        }
    }
    /* Mapping and list types ignore tags: refuse them there too. */
    if ((*out == V_MAP || *out == V_SEQ) && fy_node_get_tag(n, &tlen) && tlen)
        return fail(x, line, "YAML tags are not supported here");
    return 0;
}

static int get_u64(ctx_t *x, struct fy_node *n, int line, uint64_t min, uint64_t max,
                   uint64_t *out)
{
    int rc, t;
    size_t len;
    const char *p;
    uint64_t v = 0;
    bool neg = false, big = false;

    if ((rc = deref(x, &n, line)) || (rc = classify(x, n, line, &t))) return rc;
    p = scalar_text(n, &len);
    if (t != V_INT) {
        bool quoted_int = t == V_STR && is_int_text(p, len);
        return fail(x, line, "expected an integer, got %s%s", vtype_name[t],
                    quoted_int ? " (remove the quotes)" : "");
    }
    if (len > 2 && p[0] == '0' && (p[1] == 'o' || p[1] == 'x')) {
        unsigned shift = p[1] == 'o' ? 3 : 4;
        for (size_t i = 2; i < len; i++) {
            char c = p[i];
            unsigned d = c <= '9' ? (unsigned)(c - '0')
                         : c >= 'a' ? (unsigned)(c - 'a' + 10) : (unsigned)(c - 'A' + 10);
            if (v >> (64 - shift)) big = true;
            v = (v << shift) | d;
        }
    } else {
        const char *q = p;
        size_t ql = len;
        if (q[0] == '-' || q[0] == '+') {
            neg = q[0] == '-';
            q++, ql--;
        }
        if (al_parse_u64(q, ql, &v) != AL_OK) big = true;
    }
    if (big || (neg && v != 0) || v < min || v > max)
        return fail(x, line, "%.*s is out of range (%llu..%llu)",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p, (unsigned long long)min,
                    (unsigned long long)max);
    *out = v;
    return 0;
}

static int get_double(ctx_t *x, struct fy_node *n, int line, double min, double max,
                      double *out)
{
    int rc, t;
    size_t len;
    const char *p;
    char buf[64];
    double v;

    if ((rc = deref(x, &n, line)) || (rc = classify(x, n, line, &t))) return rc;
    p = scalar_text(n, &len);
    if (t != V_INT && t != V_FLOAT) {
        bool quoted = t == V_STR && (is_int_text(p, len) || is_float_text(p, len));
        return fail(x, line, "expected a number, got %s%s", vtype_name[t],
                    quoted ? " (remove the quotes)" : "");
    }
    if (len >= sizeof buf) return fail(x, line, "number is too long");
    if (len > 2 && p[0] == '0' && (p[1] == 'o' || p[1] == 'x')) {
        uint64_t u;
        if ((rc = get_u64(x, n, line, 0, UINT64_MAX, &u))) return rc;
        v = (double)u;
    } else {
        memcpy(buf, p, len);
        buf[len] = '\0';
        char *dot = strchr(buf, '.');
        if (dot && dot[1] && (dot[1] == 'i' || dot[1] == 'I' || dot[1] == 'n' || dot[1] == 'N'))
            return fail(x, line, "%s is not a finite number", buf);
        v = strtod(buf, NULL);
    }
    if (!isfinite(v)) return fail(x, line, "%.*s is not a finite number", (int)len, p);
    if (v < min || v > max)
        return fail(x, line, "%.*s is out of range (%g..%g)", (int)len, p, min, max);
    *out = v;
    return 0;
}

/* Renders ms in the largest unit that divides it: "2s", "100ms", "24h". */
static const char *fmt_ms(uint64_t ms, char *buf, size_t len)
{
    static const struct { uint64_t ms; const char *unit; } units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"},
    };
    if (ms == 0) {
        snprintf(buf, len, "0");
        return buf;
    }
    for (size_t i = 0; i < AL_ARRAY_LEN(units); i++)
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return buf;
        }
    snprintf(buf, len, "%llums", (unsigned long long)ms);
    return buf;
}

/* A duration in milliseconds: "250ms", "30s", "5m", "2h", "1d"
 * (al_parse_duration_ms), or a plain integer taken as milliseconds like the
 * values of the *_ms keys. */
static int get_duration(ctx_t *x, struct fy_node *n, int line, uint64_t min, uint64_t max,
                        uint64_t *out)
{
    int rc, t;
    size_t len;
    const char *p;
    char buf[32], lo[24], hi[24];
    uint64_t v;

    if ((rc = deref(x, &n, line)) || (rc = classify(x, n, line, &t))) return rc;
    p = scalar_text(n, &len);
    if (t == V_INT) {
        if (p[0] == '-') return fail(x, line, "a duration must not be negative");
        if ((rc = get_u64(x, n, line, 0, UINT64_MAX, &v))) return rc;
    } else if (t == V_STR) {
        bool ok = len > 0 && len < sizeof buf;
        if (ok) {
            memcpy(buf, p, len);
            buf[len] = '\0';
            ok = al_parse_duration_ms(buf, &v) == AL_OK;
        }
        if (!ok)
            return fail(x, line, "'%.*s' is not a duration (e.g. 250ms, 30s, 5m, 2h, 1d)",
                        (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    } else {
        return fail(x, line, "expected a duration (e.g. 250ms, 30s, 5m), got %s", vtype_name[t]);
    }
    if (v < min || v > max)
        return fail(x, line, "%.*s is out of range (%s..%s)",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p, fmt_ms(min, lo, sizeof lo),
                    fmt_ms(max, hi, sizeof hi));
    *out = v;
    return 0;
}

/* A string value; numbers are taken as written ("model: 3" is "3"), null,
 * booleans and collections are type errors.  The text is borrowed. */
static int get_str(ctx_t *x, struct fy_node *n, int line, const char **out, size_t *len)
{
    int rc, t;

    *out = "";
    *len = 0;
    if ((rc = deref(x, &n, line)) || (rc = classify(x, n, line, &t))) return rc;
    if (t != V_STR && t != V_INT && t != V_FLOAT)
        return fail(x, line, "expected a string, got %s%s", vtype_name[t],
                    t == V_BOOL ? " (quote it to use the word)" : "");
    *out = scalar_text(n, len);
    if (memchr(*out, '\0', *len)) return fail(x, line, "must not contain NUL bytes");
    return 0;
}

/* Printable ASCII and UTF-8 only: these strings end up in logs and headers. */
static int check_printable(ctx_t *x, int line, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return fail(x, line, "must not contain control characters");
    return 0;
}

static void set_str(char **dst, const char *p, size_t len)
{
    free(*dst);
    *dst = al_strndup(p, len);
}

/* Key of a mapping pair: a scalar, aliases followed. */
static int pair_key(ctx_t *x, struct fy_node_pair *pr, int line, const char **k, size_t *kl,
                    int *kline)
{
    struct fy_node *kn = fy_node_pair_key(pr);
    int rc;

    *k = "";
    *kl = 0;
    *kline = node_line(kn, line);
    if ((rc = deref(x, &kn, *kline))) return rc;
    if (kn && fy_node_get_type(kn) != FYNT_SCALAR)
        return fail(x, *kline, "keys must be plain strings, not %s",
                    fy_node_get_type(kn) == FYNT_MAPPING ? "mappings" : "lists");
    if ((rc = check_quotes(x, kn, *kline))) return rc;
    *k = scalar_text(kn, kl);
    return 0;
}

/* ---- name tables ---------------------------------------------------- */

static uint64_t name_hash(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void index_init(name_index_t *ix, size_t n)
{
    size_t cap = 8;
    while (cap < n * 2) cap <<= 1;
    ix->slot = al_calloc(cap, sizeof *ix->slot);
    ix->mask = cap - 1;
}

static const char *entry_name(const void *base, size_t stride, size_t off, size_t i)
{
    return *(char *const *)((const char *)base + i * stride + off);
}

static bool name_eq(const char *s, const char *p, size_t len)
{
    return s && strnlen(s, len + 1) == len && memcmp(s, p, len) == 0;
}

/* Index of the entry named p/len, or -1. */
static long index_find(const name_index_t *ix, const void *base, size_t stride, size_t off,
                       const char *p, size_t len)
{
    if (!ix->slot || !p) return -1;
    for (size_t i = name_hash(p, len) & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t s = ix->slot[i];
        if (!s) return -1;
        if (name_eq(entry_name(base, stride, off, s - 1), p, len)) return (long)s - 1;
    }
}

/* Adds entry i; false if its name is already there. */
static bool index_add(name_index_t *ix, const void *base, size_t stride, size_t off, size_t i)
{
    const char *name = entry_name(base, stride, off, i);
    size_t len = strlen(name);
    if (index_find(ix, base, stride, off, name, len) >= 0) return false;
    size_t j = name_hash(name, len) & ix->mask;
    while (ix->slot[j]) j = (j + 1) & ix->mask;
    ix->slot[j] = (uint32_t)i + 1;
    return true;
}

#define PROV_ARGS(c) (c)->providers, sizeof(al_provider_t), offsetof(al_provider_t, name)
#define MODEL_ARGS(c) (c)->models, sizeof(al_model_t), offsetof(al_model_t, alias)
#define AGENT_ARGS(c) (c)->agents, sizeof(al_agent_t), offsetof(al_agent_t, name)
#define ROUTE_ARGS(c) (c)->routes, sizeof(al_route_t), offsetof(al_route_t, name)
#define TEAM_ARGS(c) (c)->teams, sizeof(al_team_t), offsetof(al_team_t, name)

/* ---- the field tables ----------------------------------------------- */

enum { K_U32, K_U64, K_UINT, K_SIZE, K_DOUBLE, K_DUR, K_MAP, K_FN };

typedef struct field field_t;
typedef int (*field_fn)(ctx_t *x, struct fy_node *v, int line, void *obj);

struct field {
    const char *key;
    uint8_t kind;
    bool required;
    size_t off;                      /* into the object (K_MAP: to the sub-object) */
    uint64_t min, max;
    field_fn fn;                     /* K_FN */
    const field_t *sub;              /* K_MAP */
    size_t nsub;
};

#define F_U32(k, type, member, lo, hi) \
    { .key = k, .kind = K_U32, .off = offsetof(type, member), .min = lo, .max = hi }
/* A duration stored as uint32_t milliseconds; bounds in milliseconds. */
#define F_DUR(k, type, member, lo, hi) \
    { .key = k, .kind = K_DUR, .off = offsetof(type, member), .min = lo, .max = hi }
#define F_FN(k, handler) { .key = k, .kind = K_FN, .fn = handler }
#define F_REQ(k, handler) { .key = k, .kind = K_FN, .required = true, .fn = handler }

static int parse_map(ctx_t *x, struct fy_node *m, int line, const field_t *f, size_t nf,
                     void *obj, int *lines);

static int apply_field(ctx_t *x, const field_t *f, struct fy_node *v, int line, void *obj)
{
    char *at = (char *)obj + f->off;
    uint64_t u = 0;
    double d = 0;
    int rc;

    switch (f->kind) {
    case K_U32:
    case K_U64:
    case K_UINT:
    case K_SIZE:
        if ((rc = get_u64(x, v, line, f->min, f->max, &u))) return rc;
        if (f->kind == K_U32) *(uint32_t *)(void *)at = (uint32_t)u;
        else if (f->kind == K_U64) *(uint64_t *)(void *)at = u;
        else if (f->kind == K_UINT) *(unsigned *)(void *)at = (unsigned)u;
        else *(size_t *)(void *)at = (size_t)u;
        return 0;
    case K_DOUBLE:
        if ((rc = get_double(x, v, line, (double)f->min, (double)f->max, &d))) return rc;
        *(double *)(void *)at = d;
        return 0;
    case K_DUR:
        AL_ASSERT(f->max <= UINT32_MAX);
        if ((rc = get_duration(x, v, line, f->min, f->max, &u))) return rc;
        *(uint32_t *)(void *)at = (uint32_t)u;
        return 0;
    case K_MAP:
        return parse_map(x, v, line, f->sub, f->nsub, at, NULL);
    default:
        return f->fn(x, v, line, obj);
    }
}

/* Walks mapping m (null counts as empty) against the table.  lines, when
 * given, receives the line of each field present (0 when absent) so the
 * caller can point at keys in cross-field checks. */
static int parse_map(ctx_t *x, struct fy_node *m, int line, const field_t *f, size_t nf,
                     void *obj, int *lines)
{
    struct fy_node_pair *pr;
    void *it = NULL;
    uint64_t seen = 0;
    int rc, t;

    AL_ASSERT(nf <= 64);
    if ((rc = deref(x, &m, line)) || (rc = classify(x, m, line, &t))) return rc;
    if (t != V_NULL && t != V_MAP) return fail(x, line, "expected a mapping, got %s", vtype_name[t]);
    while (t == V_MAP && (pr = fy_node_mapping_iterate(m, &it))) {
        const char *k;
        size_t kl, i;
        int kline;

        if ((rc = pair_key(x, pr, line, &k, &kl, &kline))) return rc;
        for (i = 0; i < nf; i++)
            if (text_is(k, kl, f[i].key)) break;
        size_t mark = path_push(x, k, kl);
        if (i == nf) {
            suggest_t s;
            char hint[96];
            if (text_is(k, kl, "<<"))
                return fail(x, kline, "merge keys (<<) are not supported; write the keys out");
            suggest_init(&s, k, kl);
            for (size_t j = 0; j < nf; j++) suggest_try(&s, f[j].key);
            return fail(x, kline, "unknown key%s", suggest_hint(&s, hint, sizeof hint));
        }
        struct fy_node *v = fy_node_pair_value(pr);
        int vline = node_line(v, kline);
        seen |= 1ull << i;
        if (lines) lines[i] = vline;
        if ((rc = apply_field(x, &f[i], v, vline, obj))) return rc;
        path_pop(x, mark);
    }
    for (size_t i = 0; i < nf; i++)
        if (f[i].required && !(seen & (1ull << i)))
            return fail(x, line, "missing required key '%s'", f[i].key);
    return 0;
}

/* Fails on the key `key` below the current path. */
__attribute__((format(printf, 4, 5)))
static int fail_at(ctx_t *x, int line, const char *key, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    path_push(x, key, strlen(key));
    return fail(x, line, "%s", msg);
}

/* ---- server --------------------------------------------------------- */

/* "HOST:PORT" with an IPv4 literal, "localhost" or a bracketed IPv6
 * literal.  Returns NULL or what is wrong. */
static const char *parse_hostport(const char *p, size_t len, char host[64], uint16_t *port)
{
    const char *colon, *h;
    size_t hl;
    uint64_t v;
    unsigned char bin[16];

    if (len == 0) return "is empty";
    if (p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (!close) return "has no closing ']'";
        h = p + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
        if (colon >= p + len || *colon != ':') return "needs a port after ']', e.g. [::1]:8080";
    } else {
        colon = memrchr(p, ':', len);
        if (!colon) return "needs a port, e.g. 127.0.0.1:8080";
        if (memchr(p, ':', (size_t)(colon - p)))
            return "IPv6 addresses go in brackets, e.g. [::1]:8080";
        h = p;
        hl = (size_t)(colon - p);
    }
    if (hl == 0) return "needs a host (0.0.0.0 listens on every interface)";
    if (hl >= 64) return "host is too long";
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (p[0] == '[') {
        if (inet_pton(AF_INET6, host, bin) != 1) return "is not a valid IPv6 address";
    } else if (text_is(host, hl, "localhost")) {
        memcpy(host, "127.0.0.1", sizeof "127.0.0.1");
    } else if (inet_pton(AF_INET, host, bin) != 1) {
        return "host must be an IPv4 address, localhost or [IPv6]";
    }
    colon++;
    size_t pl = (size_t)(p + len - colon);
    if (al_parse_u64(colon, pl, &v) != AL_OK || v < 1 || v > 65535)
        return "port must be a number from 1 to 65535";
    *port = (uint16_t)v;
    return NULL;
}

static int addr_field(ctx_t *x, struct fy_node *v, int line, char **host, uint16_t *port)
{
    const char *p, *why;
    size_t len;
    char h[64];
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if ((why = parse_hostport(p, len, h, port)))
        return fail(x, line, "bad address '%.*s': %s", (int)AL_MIN(len, (size_t)CFG_SHOW_MAX),
                    p, why);
    set_str(host, h, strlen(h));
    return 0;
}

static int h_listen(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_server_cfg_t *s = obj;
    return addr_field(x, v, line, &s->listen_host, &s->listen_port);
}

static int h_admin_listen(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_server_cfg_t *s = obj;
    struct fy_node *n = v;
    size_t len;
    int rc, t;

    if ((rc = deref(x, &n, line)) || (rc = classify(x, n, line, &t))) return rc;
    const char *p = scalar_text(n, &len);
    if (t == V_NULL || (t == V_BOOL && (p[0] == 'f' || p[0] == 'F')) ||
        (t == V_STR && (len == 0 || text_is(p, len, "off")))) {
        s->admin_port = 0;          /* admin listener disabled; host kept */
        return 0;
    }
    return addr_field(x, v, line, &s->admin_host, &s->admin_port);
}

static const field_t server_fields[] = {
    F_FN("listen", h_listen),
    F_FN("admin_listen", h_admin_listen),
    {.key = "workers", .kind = K_UINT, .off = offsetof(al_server_cfg_t, workers), .max = 256},
    {.key = "max_header_bytes", .kind = K_SIZE, .off = offsetof(al_server_cfg_t, max_header_bytes),
     .min = 1024, .max = 1048576},
    {.key = "max_body_bytes", .kind = K_SIZE, .off = offsetof(al_server_cfg_t, max_body_bytes),
     .min = 1024, .max = 1073741824},
    {.key = "max_response_bytes", .kind = K_SIZE,
     .off = offsetof(al_server_cfg_t, max_response_bytes), .min = 1024, .max = 1073741824},
    F_U32("header_timeout_ms", al_server_cfg_t, header_timeout_ms, 100, 3600000),
    F_U32("body_timeout_ms", al_server_cfg_t, body_timeout_ms, 100, 3600000),
    F_U32("idle_timeout_ms", al_server_cfg_t, idle_timeout_ms, 100, 3600000),
    {.key = "max_connections", .kind = K_UINT, .off = offsetof(al_server_cfg_t, max_connections),
     .min = 1, .max = 1000000},
    F_U32("shutdown_grace_ms", al_server_cfg_t, shutdown_grace_ms, 0, 600000),
};

/* ---- store and log -------------------------------------------------- */

static bool has_prefix(const char *p, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    return len >= n && al_mem_ieq(p, n, pre, n);
}

static int h_store_url(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_store_cfg_t *s = obj;
    const char *p;
    size_t len, n = sizeof "sqlite://" - 1;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len)) || (rc = check_printable(x, line, p, len)))
        return rc;
    if (has_prefix(p, len, "postgres://") || has_prefix(p, len, "postgresql://"))
        return fail(x, line, "postgres store not built yet");
    if (!has_prefix(p, len, "sqlite://"))
        return fail(x, line, "unsupported store url '%.*s' (expected sqlite://PATH)",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    if (len == n) return fail(x, line, "sqlite:// needs a file path, e.g. sqlite://airlock.db");
    set_str(&s->url, p, len);
    set_str(&s->sqlite_path, p + n, len - n);
    return 0;
}

static const field_t store_fields[] = {
    F_REQ("url", h_store_url),
    F_U32("queue_capacity", al_store_cfg_t, queue_capacity, 1, 10000000),
    F_U32("flush_interval_ms", al_store_cfg_t, flush_interval_ms, 1, 10000),
    F_U32("batch_max", al_store_cfg_t, batch_max, 1, 100000),
};

static int h_log_level(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_config_t *c = obj;
    const char *p;
    size_t len;
    char buf[16];
    int rc, level = -1;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (len < sizeof buf) {
        memcpy(buf, p, len);
        buf[len] = '\0';
        level = al_log_level_parse(buf);
    }
    if (level < 0)
        return fail(x, line, "unknown level '%.*s' (debug, info, warn or error)",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    c->log_level = level;
    return 0;
}

static const field_t log_fields[] = {
    F_FN("level", h_log_level),
};

/* ---- providers ------------------------------------------------------ */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int h_type(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_provider_t *pv = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (text_is(p, len, "openai")) pv->type = AL_PROVIDER_OPENAI;
    else if (text_is(p, len, "anthropic")) pv->type = AL_PROVIDER_ANTHROPIC;
    else if (text_is(p, len, "simulated")) pv->type = AL_PROVIDER_SIMULATED;
    else {
        suggest_t s;
        char hint[96];
        suggest_init(&s, p, len);
        suggest_try(&s, "openai");
        suggest_try(&s, "anthropic");
        suggest_try(&s, "simulated");
        return fail(x, line, "unknown provider type '%.*s' (openai, anthropic or simulated)%s",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p, suggest_hint(&s, hint, sizeof hint));
    }
    return 0;
}

/* An http:// or https:// URL without spaces or control characters and, when
 * max is not 0, at most max bytes: 0 with *scheme the scheme's length
 * ("https://" is 8), else the failure reported at line. */
static int http_url(ctx_t *x, int line, const char *p, size_t len, size_t max,
                    size_t *scheme /* OUT */)
{
    if (has_prefix(p, len, "http://")) *scheme = 7;
    else if (has_prefix(p, len, "https://")) *scheme = 8;
    else return fail(x, line, "must start with http:// or https://");
    if (max && len > max) return fail(x, line, "longer than %zu characters", max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
            return fail(x, line, "must not contain spaces or control characters");
    return 0;
}

static int h_base_url(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_provider_t *pv = obj;
    const char *p;
    size_t len, scheme;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if ((rc = http_url(x, line, p, len, 0, &scheme))) return rc;
    while (len > scheme && p[len - 1] == '/') len--;
    if (len == scheme || p[scheme] == '/') return fail(x, line, "needs a host after the scheme");
    set_str(&pv->base_url, p, len);
    return 0;
}

/* The anthropic-version header value: a short token such as 2023-06-01. */
static int h_anthropic_version(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_provider_t *pv = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (len == 0 || len >= AL_NAME_MAX)
        return fail(x, line, "must be 1 to %d characters, e.g. \"2023-06-01\"", AL_NAME_MAX - 1);
    for (size_t i = 0; i < len; i++)
        if (!is_tchar(p[i]))
            return fail(x, line, "'%.*s' is not a header value token (e.g. \"2023-06-01\")",
                        (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    set_str(&pv->anthropic_version, p, len);
    return 0;
}

static bool is_env_name(const char *p, size_t len)
{
    bool ok = len > 0 && len < 256 && !(p[0] >= '0' && p[0] <= '9');
    for (size_t i = 0; ok && i < len; i++)
        ok = p[i] == '_' || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
             (p[i] >= '0' && p[i] <= '9');
    return ok;
}

static int h_api_key_env(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_provider_t *pv = obj;
    const char *p, *val;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (!is_env_name(p, len))
        return fail(x, line, "'%.*s' is not an environment variable name",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    set_str(&pv->api_key_env, p, len);
    val = x->env ? x->env(pv->api_key_env) : getenv(pv->api_key_env);
    if (!val) return fail(x, line, "environment variable %s is not set", pv->api_key_env);
    /* The value goes into an HTTP header: a stray CR, LF (a CRLF env file)
     * or any control character would inject headers.  Never echo it. */
    for (const char *q = val; *q; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x21 || ch == 0x7f)
            return fail(x, line, "environment variable %s holds a space or control character",
                        pv->api_key_env);
    }
    if (strlen(val) > 4096)
        return fail(x, line, "environment variable %s is longer than 4096 bytes", pv->api_key_env);
    if (pv->api_key) {
        explicit_bzero(pv->api_key, strlen(pv->api_key));
        AL_FREE(pv->api_key);
    }
    pv->api_key = al_strdup(val);
    return 0;
}

/* Headers the gateway owns: framing and connection management. */
static bool is_reserved_header(const char *p, size_t len)
{
    static const char *const names[] = {
        "host", "content-length", "transfer-encoding", "connection", "keep-alive",
        "upgrade", "te", "trailer", "proxy-connection",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(names); i++)
        if (al_mem_ieq(p, len, names[i], strlen(names[i]))) return true;
    return false;
}

static int h_headers(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_provider_t *pv = obj;
    struct fy_node_pair *pr;
    void *it = NULL;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t == V_NULL) return 0;
    if (t != V_MAP) return fail(x, line, "expected a mapping of header: value, got %s", vtype_name[t]);
    size_t n = (size_t)AL_MAX(fy_node_mapping_item_count(v), 0);
    if (n > CFG_HEADERS_MAX) return fail(x, line, "too many headers (at most %d)", CFG_HEADERS_MAX);
    for (size_t i = 0; i < pv->n_headers; i++) {
        free(pv->headers[i].name);
        free(pv->headers[i].value);
    }
    free(pv->headers);
    pv->headers = al_calloc(n, sizeof *pv->headers);
    pv->n_headers = 0;
    while ((pr = fy_node_mapping_iterate(v, &it))) {
        const char *k, *val;
        size_t kl, vl;
        int kline;

        if ((rc = pair_key(x, pr, line, &k, &kl, &kline))) return rc;
        size_t mark = path_push(x, k, kl);
        if (kl == 0) return fail(x, kline, "header name is empty");
        for (size_t i = 0; i < kl; i++)
            if (!is_tchar(k[i])) return fail(x, kline, "invalid character in header name");
        if (is_reserved_header(k, kl))
            return fail(x, kline, "this header is managed by the gateway and cannot be set");
        for (size_t i = 0; i < pv->n_headers; i++)
            if (al_mem_ieq(pv->headers[i].name, strlen(pv->headers[i].name), k, kl))
                return fail(x, kline, "header is set twice");
        struct fy_node *vn = fy_node_pair_value(pr);
        int vline = node_line(vn, kline);
        if ((rc = get_str(x, vn, vline, &val, &vl))) return rc;
        for (size_t i = 0; i < vl; i++)
            if (((unsigned char)val[i] < 0x20 && val[i] != '\t') || val[i] == 0x7f)
                return fail(x, vline, "header value must not contain control characters");
        pv->headers[pv->n_headers].name = al_strndup(k, kl);
        pv->headers[pv->n_headers].value = al_strndup(val, vl);
        pv->n_headers++;
        path_pop(x, mark);
    }
    return 0;
}

static int h_forward_headers(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_provider_t *pv = obj;
    void *it = NULL;
    struct fy_node *item;
    int rc, t;
    size_t idx = 0;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t == V_NULL) return 0;
    if (t != V_SEQ) return fail(x, line, "expected a list of header names, got %s", vtype_name[t]);
    size_t n = (size_t)AL_MAX(fy_node_sequence_item_count(v), 0);
    if (n > CFG_HEADERS_MAX) return fail(x, line, "too many headers (at most %d)", CFG_HEADERS_MAX);
    for (size_t i = 0; i < pv->n_forward_headers; i++) free(pv->forward_headers[i]);
    free(pv->forward_headers);
    pv->forward_headers = al_calloc(n, sizeof *pv->forward_headers);
    pv->n_forward_headers = 0;
    while ((item = fy_node_sequence_iterate(v, &it))) {
        const char *p;
        size_t len, mark = path_push_index(x, idx++);
        int iline = node_line(item, line);

        if ((rc = get_str(x, item, iline, &p, &len))) return rc;
        if (len == 0) return fail(x, iline, "header name is empty");
        for (size_t i = 0; i < len; i++) {
            if (!is_tchar(p[i])) return fail(x, iline, "invalid character in header name");
            if (p[i] == '*' && i + 1 != len) return fail(x, iline, "'*' is only allowed at the end");
        }
        if (len == 1 && p[0] == '*')
            return fail(x, iline, "'*' alone would forward every header, the agent's key included");
        /* The agent's credentials: Authorization, or x-api-key on /v1/messages. */
        if (is_reserved_header(p, len) || al_mem_ieq(p, len, "authorization", 13) ||
            al_mem_ieq(p, len, "proxy-authorization", 19) || al_mem_ieq(p, len, "x-api-key", 9))
            return fail(x, iline, "this header cannot be forwarded");
        char *name = al_strndup(p, len);
        for (char *c = name; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
        for (size_t i = 0; i < pv->n_forward_headers; i++)
            if (!strcmp(pv->forward_headers[i], name)) {
                free(name);
                return fail(x, iline, "header is listed twice");
            }
        pv->forward_headers[pv->n_forward_headers++] = name;
        path_pop(x, mark);
    }
    return 0;
}

static const field_t timeout_fields[] = {
    F_U32("connect_ms", al_provider_t, connect_timeout_ms, 1, 3600000),
    F_U32("first_byte_ms", al_provider_t, first_byte_timeout_ms, 1, 3600000),
    F_U32("total_ms", al_provider_t, total_timeout_ms, 1, 3600000),
};

static const field_t sim_fields[] = {
    F_U32("latency_ms", al_sim_params_t, latency_ms, 0, 3600000),
    F_U32("jitter_ms", al_sim_params_t, jitter_ms, 0, 3600000),
    F_U32("output_tokens", al_sim_params_t, output_tokens, 1, 100000),
    F_U32("chunks", al_sim_params_t, chunks, 1, 10000),
    F_U32("chunk_interval_ms", al_sim_params_t, chunk_interval_ms, 0, 3600000),
};

enum {
    PF_TYPE, PF_BASE_URL, PF_API_KEY_ENV, PF_HEADERS, PF_FORWARD, PF_TIMEOUTS, PF_IDLE,
    PF_ANTH_VERSION, PF_SIM, PF_N
};
static const field_t provider_fields[PF_N] = {
    [PF_TYPE] = F_REQ("type", h_type),
    [PF_BASE_URL] = F_FN("base_url", h_base_url),
    [PF_API_KEY_ENV] = F_FN("api_key_env", h_api_key_env),
    [PF_HEADERS] = F_FN("headers", h_headers),
    [PF_FORWARD] = F_FN("forward_headers", h_forward_headers),
    [PF_TIMEOUTS] = {.key = "timeouts", .kind = K_MAP, .off = 0, .sub = timeout_fields,
                     .nsub = AL_ARRAY_LEN(timeout_fields)},
    [PF_IDLE] = F_DUR("stream_idle_timeout", al_provider_t, idle_timeout_ms, 0, 3600000),
    [PF_ANTH_VERSION] = F_FN("anthropic_version", h_anthropic_version),
    [PF_SIM] = {.key = "simulated", .kind = K_MAP, .off = offsetof(al_provider_t, sim),
                .sub = sim_fields, .nsub = AL_ARRAY_LEN(sim_fields)},
};

static int parse_provider(ctx_t *x, struct fy_node *v, int line, al_provider_t *p)
{
    int lines[PF_N] = {0}, rc;

    p->connect_timeout_ms = 5000;
    p->first_byte_timeout_ms = 60000;
    p->total_timeout_ms = 600000;
    p->idle_timeout_ms = 60000;
    p->sim.output_tokens = 16;
    p->sim.chunks = 8;
    if ((rc = parse_map(x, v, line, provider_fields, PF_N, p, lines))) return rc;
    if (p->type != AL_PROVIDER_ANTHROPIC && lines[PF_ANTH_VERSION])
        return fail_at(x, lines[PF_ANTH_VERSION], "anthropic_version",
                       "only allowed with type anthropic");
    if (p->type == AL_PROVIDER_SIMULATED) {
        if (lines[PF_BASE_URL])
            return fail_at(x, lines[PF_BASE_URL], "base_url", "not allowed with type simulated");
        if (lines[PF_IDLE])
            return fail_at(x, lines[PF_IDLE], "stream_idle_timeout",
                           "not allowed with type simulated");
        return 0;
    }
    if (lines[PF_SIM])
        return fail_at(x, lines[PF_SIM], "simulated", "only allowed with type simulated");
    if (p->type == AL_PROVIDER_OPENAI && !p->base_url)
        return fail(x, line, "missing required key 'base_url' (type openai needs it)");
    if (p->type == AL_PROVIDER_ANTHROPIC) {
        if (!p->base_url) p->base_url = al_strdup("https://api.anthropic.com/v1");
        if (!p->anthropic_version) p->anthropic_version = al_strdup("2023-06-01");
        /* The adapter sends these two itself; a second copy would conflict. */
        for (size_t i = 0; i < p->n_headers; i++) {
            const char *h = p->headers[i].name;
            if (al_mem_ieq(h, strlen(h), "x-api-key", 9) ||
                al_mem_ieq(h, strlen(h), "anthropic-version", 17)) {
                (void)path_push(x, "headers", 7);
                return fail_at(x, lines[PF_HEADERS], h, "set by the gateway for type anthropic "
                               "(use api_key_env and anthropic_version)");
            }
        }
    }
    return 0;
}

/* ---- models and agents ---------------------------------------------- */

static int h_model_provider(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_model_t *m = obj;
    al_config_t *c = cfgof(x);
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    long i = index_find(&x->im->providers, PROV_ARGS(c), p, len);
    if (i < 0) {
        suggest_t s;
        char hint[96];
        suggest_init(&s, p, len);
        for (size_t j = 0; j < c->n_providers; j++) suggest_try(&s, c->providers[j].name);
        return fail(x, line, "unknown provider '%.*s'%s", (int)AL_MIN(len, (size_t)CFG_SHOW_MAX),
                    p, suggest_hint(&s, hint, sizeof hint));
    }
    m->provider = &c->providers[i];
    return 0;
}

static int h_model_name(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_model_t *m = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (len == 0 || len >= AL_UPSTREAM_MODEL_MAX)
        return fail(x, line, "must be 1 to %d characters", AL_UPSTREAM_MODEL_MAX - 1);
    if ((rc = check_printable(x, line, p, len))) return rc;
    set_str(&m->upstream_model, p, len);
    return 0;
}

#define PRICE_MAX 1000000   /* USD per million tokens; anything above is a typo */
enum { PR_INPUT, PR_OUTPUT, PR_CACHED, PR_N };
static const field_t price_fields[PR_N] = {
    [PR_INPUT] = {.key = "input", .kind = K_DOUBLE, .required = true,
                  .off = offsetof(al_model_t, price_input), .max = PRICE_MAX},
    [PR_OUTPUT] = {.key = "output", .kind = K_DOUBLE, .required = true,
                   .off = offsetof(al_model_t, price_output), .max = PRICE_MAX},
    [PR_CACHED] = {.key = "cached_input", .kind = K_DOUBLE,
                   .off = offsetof(al_model_t, price_cached_input), .max = PRICE_MAX},
};

static int h_price(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_model_t *m = obj;
    int lines[PR_N] = {0}, rc;

    if ((rc = parse_map(x, v, line, price_fields, PR_N, m, lines))) return rc;
    if (!lines[PR_CACHED]) m->price_cached_input = m->price_input;
    m->has_price = true;
    return 0;
}

enum { MF_PROVIDER, MF_MODEL, MF_PRICE, MF_WINDOW, MF_MAX_OUT, MF_N };
static const field_t model_fields[MF_N] = {
    [MF_PROVIDER] = F_REQ("provider", h_model_provider),
    [MF_MODEL] = F_FN("model", h_model_name),
    [MF_PRICE] = F_FN("price", h_price),
    [MF_WINDOW] = F_U32("context_window", al_model_t, context_window, 0, UINT32_MAX),
    [MF_MAX_OUT] = F_U32("max_output_tokens", al_model_t, max_output_tokens, 1, UINT32_MAX),
};

/* ---- routes, escalation and alerts ---------------------------------- */

/* One of a fixed set of words; *out is its index.  `choices` is the list
 * as the message shows it. */
static int get_word(ctx_t *x, struct fy_node *v, int line, const char *what,
                    const char *const *words, size_t n, const char *choices, size_t *out)
{
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    for (size_t i = 0; i < n; i++)
        if (text_is(p, len, words[i])) {
            *out = i;
            return 0;
        }
    suggest_t s;
    char hint[96];
    suggest_init(&s, p, len);
    for (size_t i = 0; i < n; i++) suggest_try(&s, words[i]);
    return fail(x, line, "unknown %s '%.*s' (%s)%s", what, (int)AL_MIN(len, (size_t)CFG_SHOW_MAX),
                p, choices, suggest_hint(&s, hint, sizeof hint));
}

/* A model alias named by a route: a target or the degraded target. */
static int route_model(ctx_t *x, struct fy_node *v, int line, const al_model_t **out)
{
    al_config_t *c = cfgof(x);
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    long i = index_find(&x->im->models, MODEL_ARGS(c), p, len);
    if (i >= 0) {
        *out = &c->models[i];
        return 0;
    }
    if (index_find(&x->im->routes, ROUTE_ARGS(c), p, len) >= 0)
        return fail(x, line, "'%.*s' is a route; targets must be model aliases",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    suggest_t s;
    char hint[96];
    suggest_init(&s, p, len);
    for (size_t j = 0; j < c->n_models; j++) suggest_try(&s, c->models[j].alias);
    return fail(x, line, "unknown model '%.*s'%s", (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p,
                suggest_hint(&s, hint, sizeof hint));
}

static int h_target_model(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_route_target_t *t = obj;
    return route_model(x, v, line, &t->model);
}

static const field_t target_fields[] = {
    F_REQ("model", h_target_model),
    F_U32("weight", al_route_target_t, weight, 1, 10000),
};

static const field_t degraded_fields[] = {
    F_REQ("model", h_target_model),
};

/* A target written as a bare alias or as a mapping {model: ALIAS, ...}
 * checked against f (whose first field is `model`).  *mline receives the
 * line of the alias, for messages about the target as a whole. */
static int parse_target(ctx_t *x, struct fy_node *item, int line, const field_t *f, size_t nf,
                        al_route_target_t *t, int *mline)
{
    int lines[2] = {0}, rc, ty;

    AL_ASSERT(nf <= AL_ARRAY_LEN(lines));
    t->weight = 1;
    t->breaker = NULL;
    *mline = line;
    if ((rc = deref(x, &item, line)) || (rc = classify(x, item, line, &ty))) return rc;
    if (ty == V_MAP) {
        /* A mapping has no line of its own: use its first key's. */
        void *it = NULL;
        struct fy_node_pair *first = fy_node_mapping_iterate(item, &it);
        if (first) line = node_line(fy_node_pair_key(first), line);
        if ((rc = parse_map(x, item, line, f, nf, t, lines))) return rc;
        *mline = lines[0] ? lines[0] : line;
        return 0;
    }
    if (ty != V_STR && ty != V_INT && ty != V_FLOAT)
        return fail(x, line, "expected a model alias or {model: ALIAS%s}, got %s",
                    nf > 1 ? ", weight: N" : "", vtype_name[ty]);
    return route_model(x, item, line, &t->model);
}

static int h_targets(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_route_t *r = obj;
    void *it = NULL;
    struct fy_node *item;
    size_t idx = 0;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t != V_SEQ && t != V_NULL)
        return fail(x, line, "expected a list of model aliases, got %s", vtype_name[t]);
    size_t n = t == V_SEQ ? (size_t)AL_MAX(fy_node_sequence_item_count(v), 0) : 0;
    if (n == 0) return fail(x, line, "needs at least one target");
    if (n > CFG_TARGETS_MAX) return fail(x, line, "too many targets (at most %d)", CFG_TARGETS_MAX);
    /* A second `targets:` key is a YAML duplicate, so this runs once per route. */
    free(r->targets);
    r->targets = al_calloc(n, sizeof *r->targets);
    r->n_targets = 0;
    while ((item = fy_node_sequence_iterate(v, &it)) && r->n_targets < n) {
        al_route_target_t *tg = &r->targets[r->n_targets];
        size_t mark = path_push_index(x, idx++);
        int iline = node_line(item, line), mline;

        if ((rc = parse_target(x, item, iline, target_fields, AL_ARRAY_LEN(target_fields), tg,
                               &mline)))
            return rc;
        for (size_t j = 0; j < r->n_targets; j++)
            if (r->targets[j].model == tg->model)
                return fail(x, mline, "model '%s' is listed twice", tg->model->alias);
        r->n_targets++;
        path_pop(x, mark);
    }
    return 0;
}

static const char *const strategy_names[] = {
    [AL_STRATEGY_FALLBACK] = "fallback",
    [AL_STRATEGY_WEIGHTED] = "weighted",
    [AL_STRATEGY_LATENCY] = "latency",
};

static int h_strategy(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_route_t *r = obj;
    size_t i;
    int rc;

    if ((rc = get_word(x, v, line, "strategy", strategy_names, AL_ARRAY_LEN(strategy_names),
                       "fallback, weighted or latency", &i)))
        return rc;
    r->strategy = (al_strategy_t)i;
    return 0;
}

/* Index i is the bit 1 << i of the AL_RETRY_* mask. */
static const char *const retry_on_names[] = {"429", "5xx", "timeout", "connect_error", "reset"};

static int h_retry_on(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_retry_cfg_t *rt = obj;
    void *it = NULL;
    struct fy_node *item;
    size_t idx = 0;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t != V_SEQ)
        return fail(x, line, "expected a list of failure classes (429, 5xx, timeout, "
                    "connect_error, reset), got %s", vtype_name[t]);
    rt->on = 0;
    while ((item = fy_node_sequence_iterate(v, &it))) {
        size_t mark = path_push_index(x, idx++), i;
        int iline = node_line(item, line);
        const char *p;
        size_t len;

        /* `429` is an integer to YAML and "429" a string: both mean the class. */
        if ((rc = get_str(x, item, iline, &p, &len))) return rc;
        for (i = 0; i < AL_ARRAY_LEN(retry_on_names); i++)
            if (al_mem_ieq(p, len, retry_on_names[i], strlen(retry_on_names[i]))) break;
        if (i == AL_ARRAY_LEN(retry_on_names)) {
            suggest_t s;
            char hint[96];
            suggest_init(&s, p, len);
            for (size_t j = 0; j < AL_ARRAY_LEN(retry_on_names); j++)
                suggest_try(&s, retry_on_names[j]);
            return fail(x, iline, "unknown failure class '%.*s' (429, 5xx, timeout, "
                        "connect_error or reset)%s", (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p,
                        suggest_hint(&s, hint, sizeof hint));
        }
        if (rt->on & (1u << i))
            return fail(x, iline, "'%s' is listed twice", retry_on_names[i]);
        rt->on |= 1u << i;
        path_pop(x, mark);
    }
    return 0;
}

enum { RF_ATTEMPTS, RF_BASE, RF_CAP, RF_ON, RF_RA_CAP, RF_DEADLINE, RF_N };
static const field_t retry_fields[RF_N] = {
    [RF_ATTEMPTS] = F_U32("attempts", al_retry_cfg_t, attempts, 1, 10),
    [RF_BASE] = F_DUR("backoff_base", al_retry_cfg_t, backoff_base_ms, 0, 60000),
    [RF_CAP] = F_DUR("backoff_cap", al_retry_cfg_t, backoff_cap_ms, 0, 600000),
    [RF_ON] = F_FN("on", h_retry_on),
    [RF_RA_CAP] = F_DUR("retry_after_cap", al_retry_cfg_t, retry_after_cap_ms, 0, 3600000),
    [RF_DEADLINE] = F_DUR("deadline", al_retry_cfg_t, deadline_ms, 0, 3600000),
};

static int h_retry(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_retry_cfg_t *rt = &((al_route_t *)obj)->retry;
    int lines[RF_N] = {0}, rc;
    char a[24], b[24];

    if ((rc = parse_map(x, v, line, retry_fields, RF_N, rt, lines))) return rc;
    if (rt->backoff_cap_ms < rt->backoff_base_ms) {
        fmt_ms(rt->backoff_cap_ms, a, sizeof a);
        fmt_ms(rt->backoff_base_ms, b, sizeof b);
        if (lines[RF_CAP])
            return fail_at(x, lines[RF_CAP], "backoff_cap", "%s is less than backoff_base (%s)",
                           a, b);
        return fail_at(x, lines[RF_BASE], "backoff_base",
                       "%s is more than backoff_cap (%s by default); raise backoff_cap too", b, a);
    }
    return 0;
}

enum { BF_RATIO, BF_WINDOW, BF_MIN, BF_CONSEC, BF_COOLDOWN, BF_PROBES, BF_N };
static const field_t breaker_fields[BF_N] = {
    [BF_RATIO] = {.key = "failure_ratio", .kind = K_DOUBLE,
                  .off = offsetof(al_breaker_cfg_t, failure_ratio), .min = 0, .max = 1},
    [BF_WINDOW] = F_DUR("window", al_breaker_cfg_t, window_ms, 100, 3600000),
    [BF_MIN] = F_U32("min_requests", al_breaker_cfg_t, min_requests, 1, 1000000),
    [BF_CONSEC] = F_U32("consecutive_failures", al_breaker_cfg_t, consecutive_failures, 0, 1000000),
    [BF_COOLDOWN] = F_DUR("cooldown", al_breaker_cfg_t, cooldown_ms, 1, 3600000),
    [BF_PROBES] = F_U32("half_open_probes", al_breaker_cfg_t, half_open_probes, 1, 1000),
};

static int h_breaker(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_breaker_cfg_t *b = &((al_route_t *)obj)->breaker;
    int lines[BF_N] = {0}, rc;

    if ((rc = parse_map(x, v, line, breaker_fields, BF_N, b, lines))) return rc;
    if (!(b->failure_ratio > 0))
        return fail_at(x, lines[BF_RATIO], "failure_ratio", "must be more than 0 (at most 1)");
    return 0;
}

static int h_degraded(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_route_t *r = obj;
    int mline, rc;

    if ((rc = parse_target(x, v, line, degraded_fields, AL_ARRAY_LEN(degraded_fields),
                           &r->degraded, &mline)))
        return rc;
    r->has_degraded = true;
    return 0;
}

static int h_final(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    static const char *const words[] = {"error", "escalate"};
    al_route_t *r = obj;
    size_t i;
    int rc;

    if ((rc = get_word(x, v, line, "final action", words, 2, "error or escalate", &i))) return rc;
    r->final_escalate = i == 1;
    return 0;
}

static int h_esc_mode(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    static const char *const words[] = {[AL_ESC_DEFER] = "defer", [AL_ESC_HOLD] = "hold"};
    al_escalation_cfg_t *e = obj;
    size_t i;
    int rc;

    if ((rc = get_word(x, v, line, "mode", words, 2, "defer or hold", &i))) return rc;
    e->mode = (al_esc_mode_t)i;
    return 0;
}

enum { EF_MODE, EF_HOLD, EF_EXPIRE, EF_N };
static const field_t escalation_fields[EF_N] = {
    [EF_MODE] = F_FN("mode", h_esc_mode),
    [EF_HOLD] = F_DUR("hold_timeout", al_escalation_cfg_t, hold_timeout_ms, 1000, 3600000),
    [EF_EXPIRE] = F_DUR("expire", al_escalation_cfg_t, expire_ms, 1000, 2592000000u),
};

/* Keys absent from the mapping keep what *e held (the defaults, or for a
 * route the top-level settings). */
static int parse_escalation(ctx_t *x, struct fy_node *v, int line, al_escalation_cfg_t *e)
{
    int lines[EF_N] = {0}, rc;
    char a[24], b[24];

    if ((rc = parse_map(x, v, line, escalation_fields, EF_N, e, lines))) return rc;
    /* A held client must be answered before the escalation expires under it. */
    if (e->mode == AL_ESC_HOLD && e->expire_ms < e->hold_timeout_ms) {
        fmt_ms(e->expire_ms, a, sizeof a);
        fmt_ms(e->hold_timeout_ms, b, sizeof b);
        int l = lines[EF_EXPIRE] ? lines[EF_EXPIRE] : lines[EF_HOLD] ? lines[EF_HOLD] : line;
        return fail(x, l, "expire (%s) is shorter than hold_timeout (%s)", a, b);
    }
    return 0;
}

static int h_route_escalation(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_route_t *r = obj;
    int rc;

    if ((rc = parse_escalation(x, v, line, &r->escalation))) return rc;
    r->has_escalation = true;
    return 0;
}

enum {
    RT_TARGETS, RT_STRATEGY, RT_EXPLORATION, RT_RETRY, RT_BREAKER, RT_DEGRADED, RT_FINAL,
    RT_ESCALATION, RT_N
};
static const field_t route_fields[RT_N] = {
    [RT_TARGETS] = F_REQ("targets", h_targets),
    [RT_STRATEGY] = F_FN("strategy", h_strategy),
    [RT_EXPLORATION] = {.key = "exploration", .kind = K_DOUBLE,
                        .off = offsetof(al_route_t, exploration), .min = 0, .max = 1},
    [RT_RETRY] = F_FN("retry", h_retry),
    [RT_BREAKER] = F_FN("breaker", h_breaker),
    [RT_DEGRADED] = F_FN("degraded", h_degraded),
    [RT_FINAL] = F_FN("final", h_final),
    [RT_ESCALATION] = F_FN("escalation", h_route_escalation),
};

static void route_defaults(al_route_t *r, const al_config_t *c)
{
    r->strategy = AL_STRATEGY_FALLBACK;
    r->exploration = 0.05;
    r->retry.attempts = 2;
    r->retry.backoff_base_ms = 100;
    r->retry.backoff_cap_ms = 2000;
    r->retry.on = AL_RETRY_ALL;
    r->retry.retry_after_cap_ms = 5000;
    r->retry.deadline_ms = 0;
    r->breaker.failure_ratio = 0.5;
    r->breaker.window_ms = 30000;
    r->breaker.min_requests = 10;
    r->breaker.consecutive_failures = 5;
    r->breaker.cooldown_ms = 30000;
    r->breaker.half_open_probes = 1;
    r->final_escalate = false;
    r->has_degraded = false;
    r->has_escalation = false;
    r->escalation = c->escalation;
}

static int parse_route(ctx_t *x, struct fy_node *v, int line, al_route_t *r)
{
    int lines[RT_N] = {0}, rc;

    route_defaults(r, cfgof(x));
    if ((rc = parse_map(x, v, line, route_fields, RT_N, r, lines))) return rc;
    if (r->has_degraded)
        for (size_t i = 0; i < r->n_targets; i++)
            if (r->targets[i].model == r->degraded.model)
                return fail_at(x, lines[RT_DEGRADED], "degraded",
                               "model '%s' is already a target of this route; the degraded "
                               "target must be another model", r->degraded.model->alias);
    return 0;
}

static int h_webhook_url(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_alerts_cfg_t *a = obj;
    const char *p;
    size_t len, scheme;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if ((rc = http_url(x, line, p, len, CFG_URL_MAX, &scheme))) return rc;
    if (len == scheme || memchr("/?#", p[scheme], 3))
        return fail(x, line, "needs a host after the scheme");
    set_str(&a->webhook_url, p, len);
    return 0;
}

static const field_t alerts_fields[] = {
    F_FN("webhook_url", h_webhook_url),
    F_DUR("timeout", al_alerts_cfg_t, timeout_ms, 1, 300000),
    F_U32("queue", al_alerts_cfg_t, queue, 1, 1000000),
};

/* A string that is not blank, has no control characters and, when max is
 * not 0, at most max bytes, copied into *dst. */
static int text_field(ctx_t *x, struct fy_node *v, int line, size_t max, char **dst)
{
    const char *p;
    size_t len, i;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    for (i = 0; i < len && (p[i] == ' ' || p[i] == '\t'); i++) {}
    if (i == len) return fail(x, line, "must not be empty");
    if ((rc = check_printable(x, line, p, len))) return rc;
    if (max && len > max) return fail(x, line, "longer than %zu bytes", max);
    set_str(dst, p, len);
    return 0;
}

/* ---- audit and telemetry -------------------------------------------- */

static int get_bool(ctx_t *x, struct fy_node *v, int line, bool *out)
{
    size_t len;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t != V_BOOL) return fail(x, line, "expected true or false, got %s", vtype_name[t]);
    const char *p = scalar_text(v, &len);
    *out = p[0] == 't' || p[0] == 'T';
    return 0;
}

/* One of two words: *out = (value == b). */
static int get_choice(ctx_t *x, struct fy_node *v, int line, const char *a, const char *b,
                      bool *out)
{
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (text_is(p, len, a)) *out = false;
    else if (text_is(p, len, b)) *out = true;
    else
        return fail(x, line, "must be %s or %s, not '%.*s'", a, b,
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    return 0;
}

/* A mapping of header: value into "Name: value" lines. */
static int header_lines(ctx_t *x, struct fy_node *v, int line, char ***out, size_t *n_out)
{
    struct fy_node_pair *pr;
    void *it = NULL;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t == V_NULL) return 0;
    if (t != V_MAP) return fail(x, line, "expected a mapping of header: value, got %s", vtype_name[t]);
    size_t n = (size_t)AL_MAX(fy_node_mapping_item_count(v), 0);
    if (n > CFG_HEADERS_MAX) return fail(x, line, "too many headers (at most %d)", CFG_HEADERS_MAX);
    for (size_t i = 0; i < *n_out; i++) free((*out)[i]);
    free(*out);
    *out = al_calloc(n ? n : 1, sizeof **out);
    *n_out = 0;
    while ((pr = fy_node_mapping_iterate(v, &it))) {
        const char *k, *val;
        size_t kl, vl;
        int kline;

        if ((rc = pair_key(x, pr, line, &k, &kl, &kline))) return rc;
        size_t mark = path_push(x, k, kl);
        if (kl == 0) return fail(x, kline, "header name is empty");
        for (size_t i = 0; i < kl; i++)
            if (!is_tchar(k[i])) return fail(x, kline, "invalid character in header name");
        if (is_reserved_header(k, kl) || al_mem_ieq(k, kl, "content-type", 12))
            return fail(x, kline, "this header is managed by the gateway and cannot be set");
        struct fy_node *vn = fy_node_pair_value(pr);
        int vline = node_line(vn, kline);
        if ((rc = get_str(x, vn, vline, &val, &vl))) return rc;
        for (size_t i = 0; i < vl; i++)
            if (((unsigned char)val[i] < 0x20 && val[i] != '\t') || val[i] == 0x7f)
                return fail(x, vline, "header value must not contain control characters");
        al_buf_t b;
        al_buf_init(&b, 65536);
        al_buf_printf(&b, "%.*s: %.*s", (int)kl, k, (int)vl, val);
        if (b.err) {
            al_buf_free(&b);
            return fail(x, vline, "header is too long");
        }
        (*out)[(*n_out)++] = al_buf_take(&b, NULL);
        path_pop(x, mark);
    }
    return 0;
}

static int h_url_field(ctx_t *x, struct fy_node *v, int line, char **dst)
{
    const char *p;
    size_t len, scheme;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if ((rc = http_url(x, line, p, len, CFG_URL_MAX, &scheme))) return rc;
    if (len == scheme || memchr("/?#", p[scheme], 3))
        return fail(x, line, "needs a host after the scheme");
    set_str(dst, p, len);
    return 0;
}

static int h_audit_enabled(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return get_bool(x, v, line, &((al_audit_cfg_t *)obj)->enabled);
}

static int h_audit_durability(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return get_choice(x, v, line, "batch", "sync", &((al_audit_cfg_t *)obj)->sync);
}

static int h_audit_capture(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return get_choice(x, v, line, "metadata", "full", &((al_audit_cfg_t *)obj)->capture_full);
}

static int h_audit_origin(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 200, &((al_audit_cfg_t *)obj)->origin);
}

static int h_audit_signing_key(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 4096, &((al_audit_cfg_t *)obj)->signing_key);
}

static int h_audit_verify_key(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 1024, &((al_audit_cfg_t *)obj)->verify_key);
}

static bool kid_ok(const char *p, size_t len)
{
    if (len == 0 || len > 63) return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)p[i]) && !strchr("._-", p[i])) return false;
    return true;
}

static int h_audit_master_key_id(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_audit_cfg_t *a = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (!kid_ok(p, len)) return fail(x, line, "a key id is 1-63 characters of A-Z a-z 0-9 . _ -");
    set_str(&a->master_key_id, p, len);
    return 0;
}

static int h_mk_id(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_audit_master_key_t *k = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (!kid_ok(p, len)) return fail(x, line, "a key id is 1-63 characters of A-Z a-z 0-9 . _ -");
    set_str(&k->id, p, len);
    return 0;
}

static int h_mk_file(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 4096, &((al_audit_master_key_t *)obj)->file);
}

static int h_mk_env(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_audit_master_key_t *k = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (!is_env_name(p, len))
        return fail(x, line, "'%.*s' is not an environment variable name",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    set_str(&k->env, p, len);
    return 0;
}

enum { MK_ID, MK_FILE, MK_ENV, MK_N };
static const field_t master_key_fields[MK_N] = {
    [MK_ID] = F_REQ("id", h_mk_id),
    [MK_FILE] = F_FN("file", h_mk_file),
    [MK_ENV] = F_FN("env", h_mk_env),
};

static int h_audit_master_keys(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_audit_cfg_t *a = obj;
    struct fy_node *item;
    void *it = NULL;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t == V_NULL) return 0;
    if (t != V_SEQ) return fail(x, line, "expected a list of {id, file | env}, got %s", vtype_name[t]);
    size_t n = (size_t)AL_MAX(fy_node_sequence_item_count(v), 0);
    if (n > 64) return fail(x, line, "at most 64 master keys");
    a->master_keys = al_calloc(n ? n : 1, sizeof *a->master_keys);
    size_t idx = 0;
    while ((item = fy_node_sequence_iterate(v, &it))) {
        char num[24];
        int lines[MK_N] = {0};
        int iline = node_line(item, line);
        al_audit_master_key_t *k = &a->master_keys[a->n_master_keys++];
        snprintf(num, sizeof num, "%zu", idx++);
        size_t mark = path_push(x, num, strlen(num));
        if ((rc = parse_map(x, item, iline, master_key_fields, MK_N, k, lines))) return rc;
        if (!k->file == !k->env)
            return fail(x, iline, "give exactly one of file or env for the key's value");
        for (size_t j = 0; j + 1 < a->n_master_keys; j++)
            if (!strcmp(a->master_keys[j].id, k->id))
                return fail_at(x, lines[MK_ID], "id", "key id '%s' is listed twice", k->id);
        path_pop(x, mark);
    }
    return 0;
}

static int h_witness_file(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 4096, &((al_audit_cfg_t *)obj)->witness_file);
}

static int h_witness_url(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return h_url_field(x, v, line, &((al_audit_cfg_t *)obj)->witness_url);
}

static int h_witness_headers(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_audit_cfg_t *a = obj;
    return header_lines(x, v, line, &a->witness_headers, &a->n_witness_headers);
}

static const field_t witness_fields[] = {
    F_FN("file", h_witness_file),
    F_FN("url", h_witness_url),
    F_FN("headers", h_witness_headers),
};

static int h_audit_witness(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return parse_map(x, v, line, witness_fields, AL_ARRAY_LEN(witness_fields), obj, NULL);
}

enum { AU_CAPTURE, AU_MASTER_KEYS, AU_MASTER_KEY_ID, AU_N_CHECKED };
static const field_t audit_fields[] = {
    [AU_CAPTURE] = F_FN("capture", h_audit_capture),
    [AU_MASTER_KEYS] = F_FN("master_keys", h_audit_master_keys),
    [AU_MASTER_KEY_ID] = F_FN("master_key_id", h_audit_master_key_id),
    F_FN("enabled", h_audit_enabled),
    F_FN("durability", h_audit_durability),
    F_U32("flush_ms", al_audit_cfg_t, flush_ms, 1, 10),
    F_U32("max_payload_bytes", al_audit_cfg_t, max_payload_bytes, 1024, 64u << 20),
    F_FN("origin", h_audit_origin),
    F_FN("signing_key", h_audit_signing_key),
    F_FN("verify_key", h_audit_verify_key),
    F_U32("checkpoint_every", al_audit_cfg_t, checkpoint_every, 1, 100000000),
    F_DUR("checkpoint_interval_ms", al_audit_cfg_t, checkpoint_interval_ms, 10, 86400000),
    F_U32("retention_days", al_audit_cfg_t, retention_days, 0, 36500),
    F_FN("witness", h_audit_witness),
};

static int parse_audit(ctx_t *x, struct fy_node *v, int line, al_audit_cfg_t *a)
{
    int lines[AL_ARRAY_LEN(audit_fields)] = {0};
    int rc = parse_map(x, v, line, audit_fields, AL_ARRAY_LEN(audit_fields), a, lines);
    if (rc) return rc;
    if (a->capture_full && a->n_master_keys == 0)
        return fail_at(x, lines[AU_CAPTURE] ? lines[AU_CAPTURE] : line, "capture",
                       "full needs at least one key in audit.master_keys");
    if (a->master_key_id) {
        size_t i;
        for (i = 0; i < a->n_master_keys; i++)
            if (!strcmp(a->master_keys[i].id, a->master_key_id)) break;
        if (i == a->n_master_keys)
            return fail_at(x, lines[AU_MASTER_KEY_ID], "master_key_id",
                           "'%s' is not an id listed in audit.master_keys", a->master_key_id);
    } else if (a->n_master_keys) {
        a->master_key_id = al_strdup(a->master_keys[a->n_master_keys - 1].id);
    }
    return 0;
}

static int h_tel_service(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 200, &((al_telemetry_cfg_t *)obj)->service_name);
}

static int h_tel_content(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return get_bool(x, v, line, &((al_telemetry_cfg_t *)obj)->capture_content);
}

static int h_otlp_endpoint(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return h_url_field(x, v, line, &((al_telemetry_cfg_t *)obj)->otlp_endpoint);
}

static int h_otlp_headers(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_telemetry_cfg_t *t = obj;
    return header_lines(x, v, line, &t->otlp_headers, &t->n_otlp_headers);
}

static const field_t otlp_fields[] = {
    F_FN("endpoint", h_otlp_endpoint),
    F_FN("headers", h_otlp_headers),
    F_DUR("timeout_ms", al_telemetry_cfg_t, otlp_timeout_ms, 10, 120000),
    F_U32("batch_max", al_telemetry_cfg_t, otlp_batch_max, 1, 100000),
    F_DUR("flush_ms", al_telemetry_cfg_t, otlp_flush_ms, 1, 60000),
    F_U32("queue_max", al_telemetry_cfg_t, otlp_queue_max, 1, 10000000),
    F_U32("max_retries", al_telemetry_cfg_t, otlp_max_retries, 1, 10),
    F_DUR("backoff_ms", al_telemetry_cfg_t, otlp_backoff_ms, 1, 60000),
};

static int h_tel_otlp(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return parse_map(x, v, line, otlp_fields, AL_ARRAY_LEN(otlp_fields), obj, NULL);
}

static const field_t telemetry_fields[] = {
    F_FN("service_name", h_tel_service),
    F_FN("capture_content", h_tel_content),
    F_FN("otlp", h_tel_otlp),
};

static int h_owner(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 0, &((al_agent_t *)obj)->owner);
}

static int h_description(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_agent_t *a = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    set_str(&a->description, p, len);
    return 0;
}

static int h_agent_models(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_agent_t *a = obj;
    al_config_t *c = cfgof(x);
    uint32_t me = (uint32_t)(a - c->agents) + 1;
    void *it = NULL;
    struct fy_node *item;
    size_t idx = 0;
    int rc, t;

    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    if (t == V_NULL) return 0;
    if (t != V_SEQ)
        return fail(x, line, "expected a list of model aliases and route names, got %s",
                    vtype_name[t]);
    /* A second `models:` key is a YAML duplicate, so this runs once per agent. */
    size_t n = (size_t)AL_MAX(fy_node_sequence_item_count(v), 0);
    a->models = al_calloc(n, sizeof *a->models);
    a->routes = al_calloc(n, sizeof *a->routes);
    while ((item = fy_node_sequence_iterate(v, &it))) {
        const char *p;
        size_t len, mark = path_push_index(x, idx++);
        int iline = node_line(item, line);

        if ((rc = get_str(x, item, iline, &p, &len))) return rc;
        long i = index_find(&x->im->models, MODEL_ARGS(c), p, len);
        if (i >= 0) {
            if (x->stamp[i] == me)
                return fail(x, iline, "model '%s' is listed twice", c->models[i].alias);
            x->stamp[i] = me;
            if (a->n_models < n) a->models[a->n_models++] = &c->models[i];
            path_pop(x, mark);
            continue;
        }
        i = index_find(&x->im->routes, ROUTE_ARGS(c), p, len);
        if (i >= 0) {
            if (x->rstamp[i] == me)
                return fail(x, iline, "route '%s' is listed twice", c->routes[i].name);
            x->rstamp[i] = me;
            if (a->n_routes < n) a->routes[a->n_routes++] = &c->routes[i];
            path_pop(x, mark);
            continue;
        }
        suggest_t s;
        char hint[96];
        suggest_init(&s, p, len);
        for (size_t j = 0; j < c->n_models; j++) suggest_try(&s, c->models[j].alias);
        for (size_t j = 0; j < c->n_routes; j++) suggest_try(&s, c->routes[j].name);
        return fail(x, iline, "unknown model%s '%.*s'%s", c->n_routes ? " or route" : "",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p, suggest_hint(&s, hint, sizeof hint));
    }
    return 0;
}

/* A team: with a top-level `teams` section one of its entries, else any
 * text of name length. */
static int h_team(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_agent_t *a = obj;
    al_config_t *c = cfgof(x);
    int rc;

    if ((rc = text_field(x, v, line, AL_NAME_MAX - 1, &a->team))) return rc;
    a->team_cfg = NULL;
    if (!x->has_teams) return 0;
    long i = index_find(&x->im->teams, TEAM_ARGS(c), a->team, strlen(a->team));
    if (i < 0) {
        suggest_t s;
        char hint[96];
        suggest_init(&s, a->team, strlen(a->team));
        for (size_t j = 0; j < c->n_teams; j++) suggest_try(&s, c->teams[j].name);
        return fail(x, line, "unknown team '%s'%s", a->team,
                    s.best ? suggest_hint(&s, hint, sizeof hint)
                    : c->n_teams ? " (not an entry of the top-level teams section)"
                                 : " (the teams section defines none)");
    }
    a->team_cfg = &c->teams[i];
    return 0;
}

static int h_oncall(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, CFG_ONCALL_MAX, &((al_agent_t *)obj)->oncall);
}

static int h_data_class(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, CFG_CLASS_MAX, &((al_agent_t *)obj)->data_classification);
}

static int h_environment(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    static const char *const words[] = {"dev", "staging", "prod"};
    static const al_environment_t envs[] = {AL_ENV_DEV, AL_ENV_STAGING, AL_ENV_PROD};
    size_t i;
    int rc;

    if ((rc = get_word(x, v, line, "environment", words, 3, "dev, staging or prod", &i)))
        return rc;
    ((al_agent_t *)obj)->environment = envs[i];
    return 0;
}

/* "YYYY-MM-DD", a real calendar date from the year 2000 on, to the unix time
 * in milliseconds of its midnight UTC; false when it is not one. */
static bool parse_date(const char *p, size_t len, int64_t *ms)
{
    static const uint16_t before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273,
                                              304, 334};
    static const uint8_t month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static const uint8_t digit_at[8] = {0, 1, 2, 3, 5, 6, 8, 9};

    if (len != 10 || p[4] != '-' || p[7] != '-') return false;
    for (size_t i = 0; i < sizeof digit_at; i++)
        if (p[digit_at[i]] < '0' || p[digit_at[i]] > '9') return false;
    int64_t y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    int m = (p[5] - '0') * 10 + (p[6] - '0');
    int d = (p[8] - '0') * 10 + (p[9] - '0');
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 2000 || m < 1 || m > 12 || d < 1) return false;
    if (d > month_days[m - 1] + (m == 2 && leap)) return false;
    /* Days since 1970-01-01: 365 a year plus the leap days in between. */
    int64_t leap_days = ((y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400) -
                        (1969 / 4 - 1969 / 100 + 1969 / 400);
    int64_t days = (y - 1970) * 365 + leap_days + before_month[m - 1] + (m > 2 && leap) + (d - 1);
    *ms = days * 86400000;
    return true;
}

static int h_review_last(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_agent_t *a = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (!parse_date(p, len, &a->review_last_ms))
        return fail(x, line, "'%.*s' is not a date YYYY-MM-DD (a real day from 2000 on, "
                    "e.g. 2026-10-01)", (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    return 0;
}

#define LIMIT_MAX 1000000000u       /* rpm, tpm, concurrent, session requests */
#define USD_MAX 1000000000u         /* budgets and session cost caps */
static const field_t limits_fields[] = {
    F_U32("rpm", al_limits_cfg_t, rpm, 0, LIMIT_MAX),
    F_U32("tpm", al_limits_cfg_t, tpm, 0, LIMIT_MAX),
    F_U32("concurrent", al_limits_cfg_t, concurrent, 0, LIMIT_MAX),
};

static const field_t budget_fields[] = {
    {.key = "daily_usd", .kind = K_DOUBLE, .off = offsetof(al_budget_cfg_t, daily_usd),
     .max = USD_MAX},
    {.key = "monthly_usd", .kind = K_DOUBLE, .off = offsetof(al_budget_cfg_t, monthly_usd),
     .max = USD_MAX},
};

static const field_t session_fields[] = {
    F_U32("max_requests", al_session_cfg_t, max_requests, 0, LIMIT_MAX),
    {.key = "max_tokens", .kind = K_U64, .off = offsetof(al_session_cfg_t, max_tokens),
     .max = 1000000000000ull},
    {.key = "max_cost_usd", .kind = K_DOUBLE, .off = offsetof(al_session_cfg_t, max_cost_usd),
     .max = USD_MAX},
    F_DUR("max_duration", al_session_cfg_t, max_duration_ms, 0, 2592000000u),
    F_U32("loop_threshold", al_session_cfg_t, loop_threshold, 0, 1000000),
};

static const field_t sla_fields[] = {
    F_U32("p95_latency_ms", al_sla_cfg_t, p95_latency_ms, 1, 3600000),
    {.key = "availability_pct", .kind = K_DOUBLE, .off = offsetof(al_sla_cfg_t, availability_pct),
     .max = 100},
    {.key = "max_error_rate", .kind = K_DOUBLE, .off = offsetof(al_sla_cfg_t, max_error_rate),
     .max = 1},
};

/* review.* lands in the agent itself (offset 0). */
static const field_t review_fields[] = {
    F_FN("last", h_review_last),
    F_U32("every_days", al_agent_t, review_every_days, 1, 3650),
};

#define F_SUB(k, type, member, fields) \
    { .key = k, .kind = K_MAP, .off = offsetof(type, member), .sub = fields, \
      .nsub = AL_ARRAY_LEN(fields) }

/* A YAML subtree as JSON text (guardrails are parsed by guard/policy.c). */
static int node_json(ctx_t *x, struct fy_node *v, int line, char **out)
{
    int rc, t;
    if ((rc = deref(x, &v, line)) || (rc = classify(x, v, line, &t))) return rc;
    char *s = fy_emit_node_to_string(v, FYECF_MODE_JSON_ONELINE | FYECF_WIDTH_INF);
    if (!s) return fail(x, line, "cannot read this section");
    *out = al_strdup(s);
    free(s);
    return 0;
}

static int h_agent_guardrails(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_agent_t *a = obj;
    size_t len;
    const char *s = scalar_text(v, &len);
    a->guard_line = line;
    if (s && (text_is(s, len, "off") || text_is(s, len, "false") || text_is(s, len, "none"))) {
        a->guard_off = true;
        return 0;
    }
    free(a->guard_json);
    a->guard_json = NULL;
    return node_json(x, v, line, &a->guard_json);
}

static const field_t agent_fields[] = {
    F_REQ("owner", h_owner),
    F_FN("description", h_description),
    F_FN("models", h_agent_models),
    F_FN("team", h_team),
    F_FN("oncall", h_oncall),
    F_SUB("sla", al_agent_t, sla, sla_fields),
    {.key = "review", .kind = K_MAP, .off = 0, .sub = review_fields,
     .nsub = AL_ARRAY_LEN(review_fields)},
    F_FN("environment", h_environment),
    F_FN("data_classification", h_data_class),
    F_SUB("limits", al_agent_t, limits, limits_fields),
    F_SUB("key_limits", al_agent_t, key_limits, limits_fields),
    F_SUB("budget", al_agent_t, budget, budget_fields),
    F_SUB("session", al_agent_t, session, session_fields),
    F_FN("guardrails", h_agent_guardrails),
};

/* Absent keys: no SLA, no budget, no session caps but loop detection at 5,
 * no limits, environment unset. */
static void agent_defaults(al_agent_t *a)
{
    a->sla.p95_latency_ms = 0;
    a->sla.availability_pct = -1;
    a->sla.max_error_rate = -1;
    a->environment = AL_ENV_UNSET;
    a->budget.daily_usd = -1;
    a->budget.monthly_usd = -1;
    a->session.max_cost_usd = -1;
    a->session.loop_threshold = 5;
}

/* ---- teams and tokens ----------------------------------------------- */

static int h_team_owner(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    return text_field(x, v, line, 0, &((al_team_t *)obj)->owner);
}

static const field_t team_fields[] = {
    F_FN("owner", h_team_owner),
    F_SUB("budget", al_team_t, budget, budget_fields),
};

static int h_signing_key_env(ctx_t *x, struct fy_node *v, int line, void *obj)
{
    al_config_t *c = obj;
    const char *p;
    size_t len;
    int rc;

    if ((rc = get_str(x, v, line, &p, &len))) return rc;
    if (!is_env_name(p, len))
        return fail(x, line, "'%.*s' is not an environment variable name",
                    (int)AL_MIN(len, (size_t)CFG_SHOW_MAX), p);
    set_str(&c->token_key_env, p, len);
    return 0;
}

enum { TK_ENV, TK_TTL, TK_N };
static const field_t tokens_fields[TK_N] = {
    [TK_ENV] = F_FN("signing_key_env", h_signing_key_env),
    [TK_TTL] = F_DUR("max_ttl", al_config_t, token_max_ttl_ms, 1000, 604800000),
};

/* The signing key: SHA-256 of the named variable's value.  Without a
 * variable, or through an environment hook (the CLI) when the value is
 * missing or short, token_key_len stays 0 and parse_root makes a random key.
 * The value is never echoed. */
static int parse_tokens(ctx_t *x, struct fy_node *v, int line)
{
    al_config_t *c = cfgof(x);
    int lines[TK_N] = {0}, rc;
    unsigned int mdlen = 0;

    if ((rc = parse_map(x, v, line, tokens_fields, TK_N, c, lines))) return rc;
    if (!c->token_key_env) return 0;
    const char *val = x->env ? x->env(c->token_key_env) : getenv(c->token_key_env);
    size_t vl = val ? strlen(val) : 0;
    if (vl >= CFG_TOKEN_KEY_MIN) {
        if (!EVP_Digest(val, vl, c->token_key, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
            return fail(x, line, "cannot hash the token signing key (OpenSSL)");
        c->token_key_len = 32;
        return 0;
    }
    if (x->env) return 0;
    if (!val)
        return fail_at(x, lines[TK_ENV], "signing_key_env",
                       "environment variable %s is not set (it holds the token signing key, "
                       "at least %d bytes)", c->token_key_env, CFG_TOKEN_KEY_MIN);
    return fail_at(x, lines[TK_ENV], "signing_key_env",
                   "environment variable %s is shorter than %d bytes (the token signing key; "
                   "make one with: openssl rand -hex 32)", c->token_key_env, CFG_TOKEN_KEY_MIN);
}

/* ---- sections of named entries -------------------------------------- */

static bool valid_name(const char *p, size_t len, bool model_alias)
{
    if (len == 0 || len >= AL_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || (model_alias && (c == ':' || c == '/'));
        if (!ok) return false;
    }
    return true;
}

typedef int (*entry_fn)(ctx_t *x, struct fy_node *v, int line, void *entry, const char *name,
                        size_t len);

/* Walks a mapping of NAME -> entry.  The array (count entries of `size`
 * bytes, zeroed) is allocated up front so pointers into it stay valid. */
static int parse_named(ctx_t *x, struct fy_node *m, int line, const char *what, bool alias_chars,
                       void **arr, size_t *count, size_t size, entry_fn fn)
{
    struct fy_node_pair *pr;
    void *it = NULL;
    int rc, t;
    size_t i = 0;

    if ((rc = deref(x, &m, line)) || (rc = classify(x, m, line, &t))) return rc;
    if (t == V_NULL) return 0;
    if (t != V_MAP)
        return fail(x, line, "expected a mapping of %s names, got %s", what, vtype_name[t]);
    *count = (size_t)AL_MAX(fy_node_mapping_item_count(m), 0);
    *arr = *count ? al_calloc(*count, size) : NULL;
    while ((pr = fy_node_mapping_iterate(m, &it)) && i < *count) {
        const char *k;
        size_t kl;
        int kline;

        if ((rc = pair_key(x, pr, line, &k, &kl, &kline))) return rc;
        size_t mark = path_push(x, k, kl);
        if (!valid_name(k, kl, alias_chars))
            return fail(x, kline, "invalid %s name: use 1 to %d characters from A-Z a-z 0-9 . _ -%s", what,
                        AL_NAME_MAX - 1, alias_chars ? " : /" : "");
        struct fy_node *v = fy_node_pair_value(pr);
        if ((rc = fn(x, v, kline, (char *)*arr + i * size, k, kl))) return rc;
        i++;
        path_pop(x, mark);
    }
    return 0;
}

static int provider_entry(ctx_t *x, struct fy_node *v, int line, void *e, const char *k, size_t kl)
{
    al_provider_t *p = e;
    al_config_t *c = cfgof(x);

    p->name = al_strndup(k, kl);
    if (!index_add(&x->im->providers, PROV_ARGS(c), (size_t)(p - c->providers)))
        return fail(x, line, "provider is defined twice");
    return parse_provider(x, v, line, p);
}

static int model_entry(ctx_t *x, struct fy_node *v, int line, void *e, const char *k, size_t kl)
{
    al_model_t *m = e;
    al_config_t *c = cfgof(x);
    int rc;

    int lines[MF_N] = {0};
    size_t i = (size_t)(m - c->models);

    m->alias = al_strndup(k, kl);
    if (i < x->n_model_lines) x->model_lines[i] = line;
    if (!index_add(&x->im->models, MODEL_ARGS(c), i))
        return fail(x, line, "model is defined twice");
    if ((rc = parse_map(x, v, line, model_fields, MF_N, m, lines))) return rc;
    if (!m->upstream_model) m->upstream_model = al_strdup(m->alias);
    if (m->context_window && m->max_output_tokens > m->context_window)
        return fail_at(x, lines[MF_MAX_OUT], "max_output_tokens",
                       "%u is more than context_window (%u)", m->max_output_tokens,
                       m->context_window);
    return 0;
}

static int route_entry(ctx_t *x, struct fy_node *v, int line, void *e, const char *k, size_t kl)
{
    al_route_t *r = e;
    al_config_t *c = cfgof(x);
    long m = index_find(&x->im->models, MODEL_ARGS(c), k, kl);

    r->name = al_strndup(k, kl);
    if (m >= 0) {
        int mline = (size_t)m < x->n_model_lines ? x->model_lines[m] : 0;
        if (mline > 0)
            return fail(x, line, "'%s' is also a model alias (models.%s, line %d); routes and "
                        "models share one namespace", r->name, r->name, mline);
        return fail(x, line, "'%s' is also a model alias; routes and models share one namespace",
                    r->name);
    }
    if (!index_add(&x->im->routes, ROUTE_ARGS(c), (size_t)(r - c->routes)))
        return fail(x, line, "route is defined twice");
    return parse_route(x, v, line, r);
}

static int agent_entry(ctx_t *x, struct fy_node *v, int line, void *e, const char *k, size_t kl)
{
    al_agent_t *a = e;
    al_config_t *c = cfgof(x);

    a->name = al_strndup(k, kl);
    if (!index_add(&x->im->agents, AGENT_ARGS(c), (size_t)(a - c->agents)))
        return fail(x, line, "agent is defined twice");
    agent_defaults(a);
    return parse_map(x, v, line, agent_fields, AL_ARRAY_LEN(agent_fields), a, NULL);
}

static int team_entry(ctx_t *x, struct fy_node *v, int line, void *e, const char *k, size_t kl)
{
    al_team_t *t = e;
    al_config_t *c = cfgof(x);

    t->name = al_strndup(k, kl);
    if (!index_add(&x->im->teams, TEAM_ARGS(c), (size_t)(t - c->teams)))
        return fail(x, line, "team is defined twice");
    t->budget.daily_usd = -1;
    t->budget.monthly_usd = -1;
    return parse_map(x, v, line, team_fields, AL_ARRAY_LEN(team_fields), t, NULL);
}

/* ---- the document --------------------------------------------------- */

enum {
    S_SERVER, S_STORE, S_LOG, S_PROVIDERS, S_MODELS, S_ROUTES, S_AGENTS, S_ESCALATION, S_ALERTS,
    S_TEAMS, S_TOKENS, S_GUARDRAILS, S_AUDIT, S_TELEMETRY, S_N
};
static const char *const section_names[S_N] = {
    "server", "store", "log", "providers", "models", "routes", "agents", "escalation", "alerts",
    "teams", "tokens", "guardrails", "audit", "telemetry",
};
#define SECTION_LIST \
    "server, store, log, providers, models, routes, agents, escalation, alerts, teams, tokens, " \
    "guardrails, audit, telemetry"


/* Every agent's guardrail policy: the defaults merged with its own. */
static int build_guardrails(ctx_t *x, int line)
{
    al_config_t *c = cfgof(x);
    const al_guard_policy_t *dflt = NULL;
    char err[400];
    bool have_dflt = false;
    int rc;

    c->guard_set = al_guard_set_new();
    for (size_t i = 0; i < c->n_agents; i++) {
        al_agent_t *a = &c->agents[i];
        if (a->guard_off || (!a->guard_json && !c->guard_json)) continue;
        if (!a->guard_json) {
            if (!have_dflt) {
                rc = al_guard_policy_build(c->guard_set, c->guard_json, NULL, c, &dflt, err,
                                           sizeof err);
                if (rc) return fail(x, line, "%s", err);
                have_dflt = true;
            }
            a->guard = dflt;
            continue;
        }
        rc = al_guard_policy_build(c->guard_set, c->guard_json, a->guard_json, c, &a->guard, err,
                                   sizeof err);
        if (rc) return fail(x, a->guard_line, "agents.%s.%s", a->name, err);
    }
    /* Check the defaults even when every agent has its own. */
    if (c->guard_json && !have_dflt) {
        rc = al_guard_policy_build(c->guard_set, c->guard_json, NULL, c, &dflt, err, sizeof err);
        if (rc) return fail(x, line, "%s", err);
    }
    return 0;
}

static size_t map_count(struct fy_node *n)
{
    if (n && fy_node_is_alias(n)) n = fy_node_resolve_alias(n);
    return n && fy_node_is_mapping(n) ? (size_t)AL_MAX(fy_node_mapping_item_count(n), 0) : 0;
}

static int parse_root(ctx_t *x, struct fy_node *root)
{
    al_config_t *c = cfgof(x);
    struct fy_node *sec[S_N] = {0};
    int lines[S_N] = {0};
    struct fy_node_pair *pr;
    void *it = NULL;
    size_t mark;
    int rc, t;

    if ((rc = deref(x, &root, 1)) || (rc = classify(x, root, node_line(root, 1), &t))) return rc;
    if (t != V_MAP)
        return fail(x, node_line(root, 1),
                    "the file must be a mapping of sections (" SECTION_LIST "), not %s",
                    vtype_name[t]);
    while ((pr = fy_node_mapping_iterate(root, &it))) {
        const char *k;
        size_t kl, i;
        int kline;

        if ((rc = pair_key(x, pr, 1, &k, &kl, &kline))) return rc;
        for (i = 0; i < S_N; i++)
            if (text_is(k, kl, section_names[i])) break;
        if (i == S_N) {
            suggest_t s;
            char hint[96];
            path_push(x, k, kl);
            suggest_init(&s, k, kl);
            for (size_t j = 0; j < S_N; j++) suggest_try(&s, section_names[j]);
            return fail(x, kline, "unknown key%s", s.best ? suggest_hint(&s, hint, sizeof hint)
                        : " (sections are " SECTION_LIST ")");
        }
        sec[i] = fy_node_pair_value(pr);
        lines[i] = kline;
    }

    /* Name tables are sized before anything points into the arrays. */
    index_init(&x->im->providers, map_count(sec[S_PROVIDERS]));
    index_init(&x->im->models, map_count(sec[S_MODELS]));
    index_init(&x->im->agents, map_count(sec[S_AGENTS]));
    index_init(&x->im->routes, map_count(sec[S_ROUTES]));
    index_init(&x->im->teams, map_count(sec[S_TEAMS]));
    x->n_model_lines = map_count(sec[S_MODELS]);
    x->model_lines = al_calloc(x->n_model_lines, sizeof *x->model_lines);

    if (lines[S_SERVER]) {
        mark = path_push(x, "server", 6);
        if ((rc = parse_map(x, sec[S_SERVER], lines[S_SERVER], server_fields,
                            AL_ARRAY_LEN(server_fields), &c->server, NULL)))
            return rc;
        path_pop(x, mark);
    }
    if (lines[S_STORE]) {
        mark = path_push(x, "store", 5);
        if ((rc = parse_map(x, sec[S_STORE], lines[S_STORE], store_fields,
                            AL_ARRAY_LEN(store_fields), &c->store, NULL)))
            return rc;
        path_pop(x, mark);
    }
    if (lines[S_LOG]) {
        mark = path_push(x, "log", 3);
        if ((rc = parse_map(x, sec[S_LOG], lines[S_LOG], log_fields, AL_ARRAY_LEN(log_fields),
                            c, NULL)))
            return rc;
        path_pop(x, mark);
    }
    /* Before routes: a route's own escalation starts from these values. */
    if (lines[S_ESCALATION]) {
        mark = path_push(x, "escalation", 10);
        if ((rc = parse_escalation(x, sec[S_ESCALATION], lines[S_ESCALATION], &c->escalation)))
            return rc;
        path_pop(x, mark);
    }
    if (lines[S_ALERTS]) {
        mark = path_push(x, "alerts", 6);
        if ((rc = parse_map(x, sec[S_ALERTS], lines[S_ALERTS], alerts_fields,
                            AL_ARRAY_LEN(alerts_fields), &c->alerts, NULL)))
            return rc;
        path_pop(x, mark);
    }
    if (lines[S_AUDIT]) {
        mark = path_push(x, "audit", 5);
        if ((rc = parse_audit(x, sec[S_AUDIT], lines[S_AUDIT], &c->audit))) return rc;
        path_pop(x, mark);
    }
    if (lines[S_TELEMETRY]) {
        mark = path_push(x, "telemetry", 9);
        if ((rc = parse_map(x, sec[S_TELEMETRY], lines[S_TELEMETRY], telemetry_fields,
                            AL_ARRAY_LEN(telemetry_fields), &c->telemetry, NULL)))
            return rc;
        path_pop(x, mark);
    }
    if (lines[S_TOKENS]) {
        mark = path_push(x, "tokens", 6);
        if ((rc = parse_tokens(x, sec[S_TOKENS], lines[S_TOKENS]))) return rc;
        path_pop(x, mark);
    }
    if (c->token_key_len == 0) {
        al_random(c->token_key, 32);
        c->token_key_len = 32;
    }
    mark = path_push(x, "providers", 9);
    if ((rc = parse_named(x, sec[S_PROVIDERS], lines[S_PROVIDERS], "provider", false,
                          (void **)&c->providers, &c->n_providers, sizeof(al_provider_t),
                          provider_entry)))
        return rc;
    path_pop(x, mark);
    mark = path_push(x, "models", 6);
    if ((rc = parse_named(x, sec[S_MODELS], lines[S_MODELS], "model", true, (void **)&c->models,
                          &c->n_models, sizeof(al_model_t), model_entry)))
        return rc;
    path_pop(x, mark);
    mark = path_push(x, "routes", 6);
    if ((rc = parse_named(x, sec[S_ROUTES], lines[S_ROUTES], "route", true, (void **)&c->routes,
                          &c->n_routes, sizeof(al_route_t), route_entry)))
        return rc;
    path_pop(x, mark);
    for (size_t i = 0; i < c->n_models; i++) {
        if (!c->models[i].has_price) continue;
        c->max_price_input = AL_MAX(c->max_price_input, c->models[i].price_input);
        c->max_price_output = AL_MAX(c->max_price_output, c->models[i].price_output);
    }
    /* Before agents: an agent's `team` names one of these. */
    x->has_teams = lines[S_TEAMS] != 0;
    mark = path_push(x, "teams", 5);
    if ((rc = parse_named(x, sec[S_TEAMS], lines[S_TEAMS], "team", false, (void **)&c->teams,
                          &c->n_teams, sizeof(al_team_t), team_entry)))
        return rc;
    path_pop(x, mark);
    x->stamp = al_calloc(c->n_models, sizeof *x->stamp);
    x->rstamp = al_calloc(c->n_routes, sizeof *x->rstamp);
    mark = path_push(x, "agents", 6);
    if ((rc = parse_named(x, sec[S_AGENTS], lines[S_AGENTS], "agent", false, (void **)&c->agents,
                          &c->n_agents, sizeof(al_agent_t), agent_entry)))
        return rc;
    path_pop(x, mark);

    if (lines[S_GUARDRAILS]) {
        mark = path_push(x, "guardrails", 10);
        if ((rc = node_json(x, sec[S_GUARDRAILS], lines[S_GUARDRAILS], &c->guard_json)))
            return rc;
        path_pop(x, mark);
    }
    if ((rc = build_guardrails(x, lines[S_GUARDRAILS]))) return rc;

    if (c->server.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->server.workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
    }
    return 0;
}

static void set_defaults(al_config_t *c)
{
    c->server.listen_host = al_strdup("127.0.0.1");
    c->server.listen_port = 8080;
    c->server.admin_host = al_strdup("127.0.0.1");
    c->server.admin_port = 8081;
    c->server.workers = 0;
    c->server.max_header_bytes = 16384;
    c->server.max_body_bytes = 8u << 20;
    c->server.max_response_bytes = 64u << 20;
    c->server.header_timeout_ms = 10000;
    c->server.body_timeout_ms = 30000;
    c->server.idle_timeout_ms = 60000;
    c->server.max_connections = 10000;
    c->server.shutdown_grace_ms = 10000;
    c->store.url = al_strdup("sqlite://airlock.db");
    c->store.sqlite_path = al_strdup("airlock.db");
    c->store.queue_capacity = 65536;
    c->store.flush_interval_ms = 10;
    c->store.batch_max = 4096;
    c->log_level = AL_LOG_INFO;
    c->escalation.mode = AL_ESC_DEFER;
    c->escalation.hold_timeout_ms = 120000;
    c->escalation.expire_ms = 86400000;
    c->alerts.webhook_url = NULL;
    c->alerts.timeout_ms = 5000;
    c->alerts.queue = 1024;
    c->token_max_ttl_ms = 3600000;
    c->audit.enabled = true;
    c->audit.flush_ms = 10;
    c->audit.max_payload_bytes = 1u << 20;
    c->audit.checkpoint_every = 1000;
    c->audit.checkpoint_interval_ms = 10000;
    c->telemetry.otlp_timeout_ms = 5000;
    c->telemetry.otlp_batch_max = 512;
    c->telemetry.otlp_flush_ms = 1000;
    c->telemetry.otlp_queue_max = 8192;
    c->telemetry.otlp_max_retries = 5;
    c->telemetry.otlp_backoff_ms = 200;
}

static void free_config(cfg_impl_t *im)
{
    al_config_t *c = &im->pub;

    free(c->path);
    free(c->server.listen_host);
    free(c->server.admin_host);
    free(c->store.url);
    free(c->store.sqlite_path);
    for (size_t i = 0; i < c->n_providers; i++) {
        al_provider_t *p = &c->providers[i];
        free(p->name);
        free(p->base_url);
        free(p->api_key_env);
        if (p->api_key) explicit_bzero(p->api_key, strlen(p->api_key));
        free(p->api_key);
        for (size_t j = 0; j < p->n_headers; j++) {
            free(p->headers[j].name);
            free(p->headers[j].value);
        }
        free(p->headers);
        for (size_t j = 0; j < p->n_forward_headers; j++) free(p->forward_headers[j]);
        free(p->forward_headers);
        free(p->anthropic_version);
    }
    free(c->providers);
    for (size_t i = 0; i < c->n_models; i++) {
        free(c->models[i].alias);
        free(c->models[i].upstream_model);
    }
    free(c->models);
    for (size_t i = 0; i < c->n_agents; i++) {
        free(c->agents[i].name);
        free(c->agents[i].owner);
        free(c->agents[i].description);
        free(c->agents[i].team);
        free(c->agents[i].oncall);
        free(c->agents[i].data_classification);
        free(c->agents[i].models);
        free(c->agents[i].routes);
        free(c->agents[i].guard_json);
    }
    al_guard_set_free(c->guard_set);
    free(c->guard_json);
    free(c->agents);
    for (size_t i = 0; i < c->n_routes; i++) {
        free(c->routes[i].name);
        free(c->routes[i].targets);
    }
    free(c->routes);
    free(c->alerts.webhook_url);
    for (size_t i = 0; i < c->n_teams; i++) {
        free(c->teams[i].name);
        free(c->teams[i].owner);
    }
    free(c->teams);
    free(c->token_key_env);
    explicit_bzero(c->token_key, sizeof c->token_key);
    free(c->audit.origin);
    free(c->audit.signing_key);
    free(c->audit.verify_key);
    for (size_t i = 0; i < c->audit.n_master_keys; i++) {
        free(c->audit.master_keys[i].id);
        free(c->audit.master_keys[i].file);
        free(c->audit.master_keys[i].env);
    }
    free(c->audit.master_keys);
    free(c->audit.master_key_id);
    free(c->audit.witness_file);
    free(c->audit.witness_url);
    for (size_t i = 0; i < c->audit.n_witness_headers; i++) free(c->audit.witness_headers[i]);
    free(c->audit.witness_headers);
    free(c->telemetry.service_name);
    free(c->telemetry.otlp_endpoint);
    for (size_t i = 0; i < c->telemetry.n_otlp_headers; i++) free(c->telemetry.otlp_headers[i]);
    free(c->telemetry.otlp_headers);
    free(im->providers.slot);
    free(im->models.slot);
    free(im->agents.slot);
    free(im->routes.slot);
    free(im->teams.slot);
    free(im);
}

/* The text must be UTF-8 made of YAML's printable characters, and may not
 * use directives.  Checking this before libfyaml runs keeps invalid bytes
 * and the directive scanner away from the parser: libfyaml 0.7.12 loops
 * forever on "%" followed by an invalid UTF-8 byte (its issue #101). */
static int check_text(ctx_t *x, const unsigned char *p, size_t len)
{
    int line = 1;

    for (size_t i = 0; i < len;) {
        unsigned char b = p[i];
        uint32_t cp;
        size_t n;

        if (b == '%' && (i == 0 || p[i - 1] == '\n' || p[i - 1] == '\r'))
            return fail(x, line, "YAML directives (%%YAML, %%TAG) are not supported");
        if (b < 0x80) {
            if (b == '\n') line++;
            if (b < 0x20 && b != '\t' && b != '\n' && b != '\r')
                return fail(x, line, "control character 0x%02x is not allowed "
                            "(write it as an escape in a double-quoted string)", b);
            if (b == 0x7f) return fail(x, line, "control character 0x7f is not allowed");
            i++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) n = 2, cp = b & 0x1f;
        else if (b >= 0xe0 && b <= 0xef) n = 3, cp = b & 0x0f;
        else if (b >= 0xf0 && b <= 0xf4) n = 4, cp = b & 0x07;
        else return fail(x, line, "byte 0x%02x is not valid UTF-8 (the file must be UTF-8)", b);
        for (size_t k = 1; k < n; k++) {
            if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
                return fail(x, line, "byte 0x%02x is not valid UTF-8 (the file must be UTF-8)",
                            b);
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return fail(x, line, "invalid UTF-8 sequence (overlong or a surrogate)");
        if ((cp >= 0x80 && cp <= 0x9f && cp != 0x85) || cp == 0xfffe || cp == 0xffff)
            return fail(x, line, "control character U+%04X is not allowed", (unsigned)cp);
        i += n;
    }
    return 0;
}

static void diag_quiet(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    AL_UNUSED(diag);
    AL_UNUSED(user);
    AL_UNUSED(buf);
    AL_UNUSED(len);
}

/* Parses the single YAML document of buf; on error fills the message. */
static int parse_yaml(ctx_t *x, const char *buf, size_t len, struct fy_diag *diag,
                      struct fy_parser **parser, struct fy_document **doc)
{
    struct fy_parse_cfg pcfg = {0};
    struct fy_diag_error *e;
    void *it = NULL;

    pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
    pcfg.diag = diag;
    *parser = fy_parser_create(&pcfg);
    if (!*parser) return fail(x, 1, "cannot create the YAML parser");
    if (len == 0 || fy_parser_set_string(*parser, buf, len) != 0)
        return fail(x, 1, "the file is empty (see examples/quickstart.yaml)");
    *doc = fy_parse_load_document(*parser);
    while ((e = fy_diag_errors_iterate(diag, &it)))
        if (e->type >= FYET_ERROR)
            return fail(x, e->line, "YAML syntax error: %s (column %d)",
                        e->msg ? e->msg : "invalid YAML", e->column);
    if (!*doc)
        return fail(x, 1, fy_diag_got_error(diag) ? "YAML syntax error"
                          : "the file is empty (see examples/quickstart.yaml)");
    if (!fy_document_root(*doc))
        return fail(x, 1, "the file is empty (see examples/quickstart.yaml)");
    struct fy_document *more = fy_parse_load_document(*parser);
    if (more) {
        fy_parse_document_destroy(*parser, more);
        return fail(x, 1, "the file holds more than one YAML document (---)");
    }
    it = NULL;
    while ((e = fy_diag_errors_iterate(diag, &it)))
        if (e->type >= FYET_ERROR)
            return fail(x, e->line, "YAML syntax error: %s (column %d)",
                        e->msg ? e->msg : "invalid YAML", e->column);
    return 0;
}

/* ---- public --------------------------------------------------------- */

int al_config_load_buf(const char *name, const char *buf, size_t len, al_getenv_fn env,
                       al_config_t **out, char *err, size_t errlen)
{
    ctx_t x = {0};
    struct fy_diag_cfg dcfg;
    struct fy_diag *diag = NULL;
    struct fy_parser *parser = NULL;
    struct fy_document *doc = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc;

    *out = NULL;
    if (err && errlen) err[0] = '\0';
    x.file = name ? name : "<config>";
    x.buf = buf;
    x.len = len;
    x.err = err;
    x.errlen = errlen;
    x.env = env;
    x.im = al_calloc(1, sizeof *x.im);
    al_config_t *c = &x.im->pub;
    atomic_init(&c->refs, 1);
    c->path = al_strdup(x.file);
    set_defaults(c);

    if (!buf && len) {
        rc = fail(&x, 1, "no input");
        goto out;
    }
    if (len > CFG_FILE_MAX) {
        rc = fail(&x, 1, "the file is larger than %u bytes", CFG_FILE_MAX);
        goto out;
    }
    if (!EVP_Digest(buf ? buf : "", len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        rc = fail(&x, 1, "cannot hash the file (OpenSSL)");
        goto out;
    }
    al_hex(md, 32, c->hash);

    if ((rc = check_text(&x, (const unsigned char *)buf, len))) goto out;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_quiet;
    dcfg.colorize = false;
    dcfg.show_source = false;   /* nobody reads it; skips libfyaml's source excerpts */
    diag = fy_diag_create(&dcfg);
    if (!diag) {
        rc = fail(&x, 1, "cannot create the YAML diagnostics");
        goto out;
    }
    fy_diag_set_collect_errors(diag, true);
    if ((rc = parse_yaml(&x, buf, len, diag, &parser, &doc))) goto out;
    rc = parse_root(&x, fy_document_root(doc));
out:
    if (doc) fy_parse_document_destroy(parser, doc);
    if (parser) fy_parser_destroy(parser);
    if (diag) fy_diag_destroy(diag);
    free(x.stamp);
    free(x.rstamp);
    free(x.model_lines);
    if (rc) {
        free_config(x.im);
        return AL_EINVAL;
    }
    *out = c;
    return AL_OK;
}

int al_config_load(const char *path, al_config_t **out, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc;

    *out = NULL;
    if (err && errlen) err[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) goto io_error;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto io_error;
    }
    if ((uint64_t)st.st_size > CFG_FILE_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "%s:1: the file is larger than %u bytes", path, CFG_FILE_MAX);
        close(fd);
        return AL_EINVAL;
    }
    buf = al_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) goto io_error;
        if (n == 0) break;          /* shrank under us: parse what is there */
        got += (size_t)n;
    }
    close(fd);
    fd = -1;
    rc = al_config_load_buf(path, buf, got, NULL, out, err, errlen);
    free(buf);
    return rc;

io_error:
    if (err && errlen) snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    free(buf);
    return AL_EIO;
}

al_config_t *al_config_ref(al_config_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void al_config_unref(al_config_t *c)
{
    if (!c) return;
    int before = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    AL_ASSERT(before > 0);
    if (before == 1) free_config((cfg_impl_t *)(void *)c);
}

const al_model_t *al_config_model(const al_config_t *c, const char *name, size_t len)
{
    const cfg_impl_t *im = (const cfg_impl_t *)(const void *)c;
    long i = c ? index_find(&im->models, MODEL_ARGS(c), name, len) : -1;
    return i < 0 ? NULL : &c->models[i];
}

const al_agent_t *al_config_agent(const al_config_t *c, const char *name, size_t len)
{
    const cfg_impl_t *im = (const cfg_impl_t *)(const void *)c;
    long i = c ? index_find(&im->agents, AGENT_ARGS(c), name, len) : -1;
    return i < 0 ? NULL : &c->agents[i];
}

const al_provider_t *al_config_provider(const al_config_t *c, const char *name, size_t len)
{
    const cfg_impl_t *im = (const cfg_impl_t *)(const void *)c;
    long i = c ? index_find(&im->providers, PROV_ARGS(c), name, len) : -1;
    return i < 0 ? NULL : &c->providers[i];
}

bool al_agent_allows(const al_agent_t *a, const al_model_t *m)
{
    if (!a || !m) return false;
    for (size_t i = 0; i < a->n_models; i++)
        if (a->models[i] == m) return true;
    return false;
}

const al_route_t *al_config_route(const al_config_t *c, const char *name, size_t len)
{
    const cfg_impl_t *im = (const cfg_impl_t *)(const void *)c;
    long i = c ? index_find(&im->routes, ROUTE_ARGS(c), name, len) : -1;
    return i < 0 ? NULL : &c->routes[i];
}

const al_team_t *al_config_team(const al_config_t *c, const char *name, size_t len)
{
    const cfg_impl_t *im = (const cfg_impl_t *)(const void *)c;
    long i = c ? index_find(&im->teams, TEAM_ARGS(c), name, len) : -1;
    return i < 0 ? NULL : &c->teams[i];
}

bool al_agent_allows_route(const al_agent_t *a, const al_route_t *r)
{
    if (!a || !r) return false;
    for (size_t i = 0; i < a->n_routes; i++)
        if (a->routes[i] == r) return true;
    return false;
}

const al_escalation_cfg_t *al_route_escalation(const al_config_t *c, const al_route_t *r)
{
    if (r && r->has_escalation) return &r->escalation;
    return c ? &c->escalation : NULL;
}
