/* usage.c - token usage out of provider responses, and their cost.
 *
 * The response (or one streamed chunk) is parsed with YAJL's tree API after
 * a cheap pre-scan that refuses NUL bytes (YAJL reads a C string) and nesting
 * deeper than 64 (YAJL frees its tree recursively, so a hostile upstream
 * could otherwise exhaust the stack).  The top-level "usage" object is read
 * in one of three shapes:
 *   OpenAI chat/embeddings: prompt_tokens, completion_tokens,
 *       prompt_tokens_details.cached_tokens (cached is part of prompt_tokens);
 *   OpenAI Responses API:   input_tokens, output_tokens,
 *       input_tokens_details.cached_tokens (same meaning);
 *   Anthropic:              input_tokens, output_tokens, cache_read_input_tokens,
 *       cache_creation_input_tokens, where input_tokens excludes the cache, so
 *       input = input_tokens + cache_read + cache_creation and cached = cache_read.
 * Counters must be non-negative integers (an integral double is accepted);
 * null counts as absent.  Duplicate members: the last one wins, as in chatreq. */
#include "pipeline/usage.h"
#include "pipeline/chatreq.h"

#include "util/common.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define MAX_DEPTH 64
#define STACK_COPY 2048

/* NUL-free and nested at most MAX_DEPTH deep (strings skipped). */
static bool prescan_ok(const char *p, size_t n)
{
    int depth = 0;
    bool in_str = false;
    if (memchr(p, '\0', n)) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > MAX_DEPTH) return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

/* Parse json into a tree; NULL with *rc set on failure. */
static yajl_val parse_tree(const char *json, size_t len, int *rc)
{
    char small[STACK_COPY + 1];
    char *copy = small;
    char ebuf[128];
    yajl_val tree;

    if (!json || len == 0 || !prescan_ok(json, len)) {
        *rc = AL_EPARSE;
        return NULL;
    }
    if (len > STACK_COPY) {
        if (len == SIZE_MAX || !(copy = malloc(len + 1))) {
            *rc = AL_ENOMEM;
            return NULL;
        }
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    tree = yajl_tree_parse(copy, ebuf, sizeof ebuf);
    if (copy != small) free(copy);
    *rc = tree ? AL_OK : AL_EPARSE;
    return tree;
}

/* The last member called name, or NULL. */
static yajl_val member(yajl_val obj, const char *name)
{
    yajl_val v = NULL;
    if (!YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], name) == 0) v = obj->u.object.values[i];
    return v;
}

/* 1 and *out when the counter is present, 0 when absent or null,
 * AL_EPARSE when it is not a non-negative integer. */
static int counter(yajl_val obj, const char *name, int64_t *out)
{
    yajl_val v = member(obj, name);
    if (!v || YAJL_IS_NULL(v)) return 0;
    if (YAJL_IS_INTEGER(v)) {
        if (v->u.number.i < 0) return AL_EPARSE;
        *out = (int64_t)v->u.number.i;
        return 1;
    }
    if (YAJL_IS_DOUBLE(v)) {
        double d = v->u.number.d;
        if (d >= 0 && d <= 9007199254740992.0 && (double)(int64_t)d == d) {
            *out = (int64_t)d;
            return 1;
        }
    }
    return AL_EPARSE;
}

/* Read a usage object into u: 0, AL_ENOTFOUND (no known counter) or AL_EPARSE. */
static int read_usage(yajl_val usage, al_usage_t *u)
{
    int64_t pt = 0, ct = 0, it = 0, ot = 0, cr = 0, cc = 0, cached = 0;
    int hp, hc, hi, ho, hr, hk, hd = 0;
    yajl_val details;

    if ((hp = counter(usage, "prompt_tokens", &pt)) < 0) return hp;
    if ((hc = counter(usage, "completion_tokens", &ct)) < 0) return hc;
    if ((hi = counter(usage, "input_tokens", &it)) < 0) return hi;
    if ((ho = counter(usage, "output_tokens", &ot)) < 0) return ho;
    if ((hr = counter(usage, "cache_read_input_tokens", &cr)) < 0) return hr;
    if ((hk = counter(usage, "cache_creation_input_tokens", &cc)) < 0) return hk;

    if (hp || hc) {
        details = member(usage, "prompt_tokens_details");
        if (YAJL_IS_OBJECT(details) && (hd = counter(details, "cached_tokens", &cached)) < 0)
            return hd;
        u->input = pt;
        u->output = ct;
        u->cached = cached;
    } else if (hi || ho || hr || hk) {
        details = member(usage, "input_tokens_details");
        if (YAJL_IS_OBJECT(details)) {
            /* Responses API: input_tokens already includes the cache. */
            if ((hd = counter(details, "cached_tokens", &cached)) < 0) return hd;
            u->input = it;
            u->cached = cached;
        } else {
            if (it > INT64_MAX - cr || it + cr > INT64_MAX - cc) return AL_EPARSE;
            u->input = it + cr + cc;
            u->cached = cr;
        }
        u->output = ot;
    } else {
        return AL_ENOTFOUND;
    }
    u->known = true;
    return AL_OK;
}

/* The document is validated by the allocation-free request scanner (which
 * also finds the top-level usage object and counts choices); YAJL then
 * builds a tree of the usage object only, not of the whole response. */
static int usage_at(const char *json, const al_chatreq_t *rq, al_usage_t *u)
{
    int rc;
    if (rq->usage.len == 0) return AL_ENOTFOUND;
    yajl_val usage = parse_tree(json + rq->usage.off, rq->usage.len, &rc);
    if (!usage) return rc;
    rc = read_usage(usage, u);
    yajl_tree_free(usage);
    return rc;
}

int al_usage_parse(const char *json, size_t len, al_usage_t *u)
{
    al_chatreq_t rq;
    char err[8];
    int rc;

    memset(u, 0, sizeof *u);
    if (!json || len == 0 || memchr(json, '\0', len)) return AL_EPARSE;
    if (al_chatreq_parse(json, len, &rq, err, sizeof err) != AL_OK) return AL_EPARSE;
    rc = usage_at(json, &rq, u);
    if (rc != AL_OK) memset(u, 0, sizeof *u);
    return rc;
}

int al_usage_chunk(const char *json, size_t len, al_usage_t *u, bool *usage_only)
{
    al_chatreq_t rq;
    char err[8];
    int rc = AL_OK;

    memset(u, 0, sizeof *u);
    *usage_only = false;
    if (!json || len == 0 || memchr(json, '\0', len)) return AL_EPARSE;
    if (al_chatreq_parse(json, len, &rq, err, sizeof err) != AL_OK) return AL_EPARSE;
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
