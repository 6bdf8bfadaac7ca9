/* usage.c - token usage out of provider responses, and their cost.
 *
 * The response (or one streamed chunk) is validated in one allocation-free
 * pass by the request scanner (chatreq.c: RFC 8259, depth <= 64, UTF-8),
 * which also locates the top-level "usage" object; that object is then read
 * in place (no tree is built: this runs once per response and once per
 * streamed chunk).  Member names are compared as written (escaped names do
 * not match).  The usage object is read in one of three shapes:
 *   OpenAI chat/embeddings: prompt_tokens, completion_tokens,
 *       prompt_tokens_details.cached_tokens (cached is part of prompt_tokens);
 *   OpenAI Responses API:   input_tokens, output_tokens,
 *       input_tokens_details.cached_tokens (same meaning);
 *   Anthropic:              input_tokens, output_tokens, cache_read_input_tokens,
 *       cache_creation_input_tokens, where input_tokens excludes the cache, so
 *       input = input_tokens + cache_read + cache_creation and cached = cache_read.
 * Counters must be non-negative integers (an integral double is accepted);
 * null counts as absent; anything else makes the usage unknown (AL_ENOTFOUND)
 * without failing the response.  Duplicate members: the last one wins. */
#include "pipeline/usage.h"
#include "pipeline/chatreq.h"

#include "util/common.h"

#include <stdlib.h>
#include <string.h>

/* The whole document has been validated by al_chatreq_parse before any of
 * these run, so they only walk it: no bounds beyond n are trusted, but no
 * grammar is re-checked. */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && is_ws(p[i])) i++;
    return i;
}

/* Index just past the value starting at p[i]. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
    if (i >= n) return n;
    if (p[i] == '"') {
        for (i++; i < n && p[i] != '"'; i++)
            if (p[i] == '\\') i++;
        return i < n ? i + 1 : n;
    }
    if (p[i] == '{' || p[i] == '[') {
        int depth = 0;
        bool str = false;
        for (; i < n; i++) {
            char c = p[i];
            if (str) {
                if (c == '\\') i++;
                else if (c == '"') str = false;
            } else if (c == '"') {
                str = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return i + 1;
            }
        }
        return n;
    }
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && !is_ws(p[i])) i++;
    return i;
}

typedef struct member {
    const char *key;   /* raw bytes between the quotes */
    size_t klen;
    const char *val;
    size_t vlen;
} member_t;

/* Next member of the object whose '{' is at p[0]; *pos carries the cursor
 * (start with 1).  Returns false at the end. */
static bool next_member(const char *p, size_t n, size_t *pos, member_t *m)
{
    size_t i = skip_ws(p, n, *pos);
    if (i < n && p[i] == ',') i = skip_ws(p, n, i + 1);
    if (i >= n || p[i] != '"') return false;
    size_t ke = skip_value(p, n, i);
    m->key = p + i + 1;
    m->klen = ke - i - 2;
    i = skip_ws(p, n, ke);
    if (i >= n || p[i] != ':') return false;
    i = skip_ws(p, n, i + 1);
    size_t ve = skip_value(p, n, i);
    m->val = p + i;
    m->vlen = ve - i;
    *pos = ve;
    return true;
}

static bool key_eq(const member_t *m, const char *lit)
{
    size_t l = strlen(lit);
    return m->klen == l && memcmp(m->key, lit, l) == 0;
}

/* 1 and *out for a non-negative integer (an integral double is accepted),
 * 0 for null, AL_EPARSE for anything else. */
static int counter_value(const member_t *m, int64_t *out)
{
    char tmp[64];
    if (m->vlen == 4 && memcmp(m->val, "null", 4) == 0) return 0;
    if (m->vlen == 0 || m->vlen >= sizeof tmp) return AL_EPARSE;
    if (m->val[0] != '-' && (m->val[0] < '0' || m->val[0] > '9')) return AL_EPARSE;
    memcpy(tmp, m->val, m->vlen);
    tmp[m->vlen] = '\0';
    uint64_t u;
    if (al_parse_u64(tmp, m->vlen, &u) == AL_OK) {
        if (u > (uint64_t)INT64_MAX) return AL_EPARSE;
        *out = (int64_t)u;
        return 1;
    }
    char *end;
    double d = strtod(tmp, &end);
    if (*end || !(d >= 0 && d <= 9007199254740992.0) || (double)(int64_t)d != d) return AL_EPARSE;
    *out = (int64_t)d;
    return 1;
}

/* The counters of one usage object, read in a single pass; the last of
 * duplicate members wins (null included), as everywhere else. */
enum { U_PT, U_CT, U_IT, U_OT, U_CR, U_CC, U_N };

typedef struct counters {
    int64_t v[U_N];
    int have[U_N];
    const char *pdet, *idet;    /* prompt_tokens_details / input_tokens_details objects */
    size_t pdet_len, idet_len;
} counters_t;

static int read_counters(const char *p, size_t n, counters_t *c)
{
    static const char *const names[U_N] = {"prompt_tokens", "completion_tokens", "input_tokens",
                                           "output_tokens", "cache_read_input_tokens",
                                           "cache_creation_input_tokens"};
    member_t m;
    size_t pos = 1;
    memset(c, 0, sizeof *c);
    while (next_member(p, n, &pos, &m)) {
        if (key_eq(&m, "prompt_tokens_details")) {
            c->pdet = m.vlen && m.val[0] == '{' ? m.val : NULL;
            c->pdet_len = c->pdet ? m.vlen : 0;
            continue;
        }
        if (key_eq(&m, "input_tokens_details")) {
            c->idet = m.vlen && m.val[0] == '{' ? m.val : NULL;
            c->idet_len = c->idet ? m.vlen : 0;
            continue;
        }
        for (int k = 0; k < U_N; k++) {
            if (!key_eq(&m, names[k])) continue;
            int64_t v = 0;
            int r = counter_value(&m, &v);
            if (r < 0) return r;
            c->have[k] = r;
            c->v[k] = r ? v : 0;
            break;
        }
    }
    return AL_OK;
}

/* cached_tokens of a details object: 1 found, 0 absent/null, AL_EPARSE. */
static int cached_in(const char *p, size_t n, int64_t *out)
{
    member_t m;
    size_t pos = 1;
    int rc = 0;
    while (next_member(p, n, &pos, &m)) {
        if (!key_eq(&m, "cached_tokens")) continue;
        int r = counter_value(&m, out);
        if (r < 0) return r;
        rc = r;
    }
    if (!rc) *out = 0;
    return rc;
}

/* Read a usage object (p[0] == '{') into u: 0, AL_ENOTFOUND (no known
 * counter) or AL_EPARSE. */
static int read_usage(const char *p, size_t n, al_usage_t *u)
{
    counters_t c;
    int64_t cached = 0;
    int rc = read_counters(p, n, &c);
    if (rc < 0) return rc;

    if (c.have[U_PT] || c.have[U_CT]) {
        if (c.pdet && (rc = cached_in(c.pdet, c.pdet_len, &cached)) < 0) return rc;
        u->input = c.v[U_PT];
        u->output = c.v[U_CT];
        u->cached = cached;
    } else if (c.have[U_IT] || c.have[U_OT] || c.have[U_CR] || c.have[U_CC]) {
        int64_t it = c.v[U_IT], cr = c.v[U_CR], cc = c.v[U_CC];
        if (c.idet) {
            /* Responses API: input_tokens already includes the cache. */
            if ((rc = cached_in(c.idet, c.idet_len, &cached)) < 0) return rc;
            u->input = it;
            u->cached = cached;
        } else {
            if (it > INT64_MAX - cr || it + cr > INT64_MAX - cc) return AL_EPARSE;
            u->input = it + cr + cc;
            u->cached = cr;
        }
        u->output = c.v[U_OT];
    } else {
        return AL_ENOTFOUND;
    }
    u->known = true;
    return AL_OK;
}

/* The document is validated by the allocation-free request scanner, which
 * also finds the top-level usage object and counts choices; the usage
 * object is then read in place. */
static int usage_at(const char *json, const al_chatreq_t *rq, al_usage_t *u)
{
    if (rq->usage.len == 0) return AL_ENOTFOUND;
    int rc = read_usage(json + rq->usage.off, rq->usage.len, u);
    /* Counters that are not non-negative integers: usage unknown, the
     * response itself is fine. */
    return rc == AL_EPARSE ? AL_ENOTFOUND : rc;
}

int al_usage_parse(const char *json, size_t len, al_usage_t *u)
{
    al_chatreq_t rq;
    int rc;

    memset(u, 0, sizeof *u);
    if (!json || len == 0 || memchr(json, '\0', len)) return AL_EPARSE;
    if (al_chatreq_scan_response(json, len, &rq) != AL_OK) return AL_EPARSE;
    rc = usage_at(json, &rq, u);
    if (rc != AL_OK) memset(u, 0, sizeof *u);
    return rc;
}

int al_usage_chunk(const char *json, size_t len, al_usage_t *u, bool *usage_only)
{
    al_chatreq_t rq;
    int rc = AL_OK;

    memset(u, 0, sizeof *u);
    *usage_only = false;
    if (!json || len == 0 || memchr(json, '\0', len)) return AL_EPARSE;
    if (al_chatreq_scan_response(json, len, &rq) != AL_OK) return AL_EPARSE;
    if (rq.usage.len) {
        rc = usage_at(json, &rq, u);
        if (rc == AL_ENOTFOUND) rc = AL_OK; /* an empty usage object */
        if (rc == AL_OK) *usage_only = rq.n_choices == 0;
    }
    if (rc != AL_OK) memset(u, 0, sizeof *u);
    return rc;
}

int al_cost_usd(const al_model_t *m, const al_usage_t *u, double *out)
{
    int64_t in, cached, output, uncached;

    if (!u || !u->known) return AL_EINVAL;
    if (!m || !m->has_price) return AL_ENOTFOUND;
    in = AL_MAX(u->input, 0);
    cached = AL_MAX(u->cached, 0);
    output = AL_MAX(u->output, 0);
    /* A provider reporting more cached than input tokens: bill the cached
     * ones at the cached price and nothing as uncached, never a negative. */
    uncached = in > cached ? in - cached : 0;
    *out = ((double)uncached * m->price_input + (double)cached * m->price_cached_input +
            (double)output * m->price_output) / 1e6;
    return AL_OK;
}
