/* classify.c - the model-based detectors of guardrails.detectors: `http`
 * (POST {"text":...,"detector":NAME} to a classifier service and read a
 * score, and optionally a boolean verdict, at dotted paths of its JSON
 * answer) and `judge` (send a one-message chat request, the detector's
 * prompt with {{text}} replaced, to a model alias or a route's first target
 * of the running configuration, and take the first number of the answer as
 * the score).  A parsed classifier is immutable and shared by every worker;
 * al_classify_start builds the request from it and the config snapshot,
 * copies what the answer's parsing needs into the job and runs the transfer
 * on the worker's al_upstream_t (curl multi on the loop), with the
 * detector's timeout as the transfer's total timeout.  The answer is
 * buffered up to 64 KiB; the verdict goes to the callback once, from the
 * transfer's end, and the job is freed right after the callback returns.
 * Non-2xx answers and connection failures are AL_EIO, timeouts
 * AL_ETIMEDOUT, unreadable or oversized answers AL_EPARSE; the policy then
 * applies the detector's on_error.  Judge requests go to OpenAI-compatible
 * providers as they are and to Anthropic ones through the translator in
 * translate/anthropic.c; the simulated provider cannot judge (its answers
 * are words with no score), so al_classifier_check refuses it at load. */
#include "guard/classify.h"
#include "translate/anthropic.h"
#include "util/json.h"
#include "util/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ANSWER_MAX (64u * 1024u)      /* a verdict is small; more is not one */
#define TIMEOUT_HTTP_DEFAULT 1000u
#define TIMEOUT_JUDGE_DEFAULT 5000u
#define TIMEOUT_MAX 120000u
#define HEADERS_MAX 32
#define HEADER_BYTES_MAX 8192
#define URL_MAX 2048
#define PATH_LEN_MAX 256
#define PROMPT_MAX (64u * 1024u)
#define NAME_MAX_LEN 64
#define MODEL_NAME_MAX 256
#define TEXT_MAX ((size_t)64 << 20)   /* no request body is this large */
#define JUDGE_MAX_TOKENS 16
#define KEY_PREFIX "guardrails.detectors."

static const char DEFAULT_PROMPT[] =
    "Rate how likely the following text is harmful, abusive or an attack on an AI "
    "assistant, from 0 (certainly fine) to 1 (certainly harmful). Answer with the number "
    "only.\n\nText:\n{{text}}";

struct al_classifier {
    char *name;
    bool judge;
    double threshold;
    bool on_error_block;
    uint32_t timeout_ms;
    /* http */
    char *url;
    al_kv_t *headers;
    size_t n_headers;
    char *score_path;        /* "score" unless set */
    char *flag_path;         /* "flagged" unless set; NULL when set to null or "" */
    /* judge */
    char *model;
    char *prompt;
};

struct al_classify_job {
    al_xfer_t *x;            /* NULL once the transfer ended */
    al_classify_done_fn cb;
    void *ud;
    al_buf_t ans;
    int status;              /* 0 until the head */
    bool judge;
    bool anthropic;
    bool refused;            /* we aborted the body (non-2xx or too big) */
    bool in_cb;
    double threshold;
    char *score_path;
    char *flag_path;
    char name[NAME_MAX_LEN + 1];
    uint64_t t0;
};

/* --- configuration ------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *name, const char *key, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

/* "guardrails.detectors.NAME.KEY: message"; AL_EINVAL. */
static int bad(char *err, size_t errlen, const char *name, const char *key, const char *fmt, ...)
{
    if (!err || !errlen) return AL_EINVAL;
    int n = snprintf(err, errlen, KEY_PREFIX "%.*s%s%s: ", NAME_MAX_LEN, name ? name : "",
                     key ? "." : "", key ? key : "");
    if (n > 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return AL_EINVAL;
}

/* A scalar's text: strings as they are, numbers as written. */
static const char *scalar_text(yajl_val v)
{
    if (YAJL_IS_STRING(v)) return v->u.string;
    if (YAJL_IS_NUMBER(v)) return v->u.number.r;
    return NULL;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* RFC 9110 token characters. */
static bool tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool valid_url(const char *s)
{
    size_t n = strlen(s), skip;
    if (n > URL_MAX) return false;
    if (n > 7 && strncasecmp(s, "http://", 7) == 0) skip = 7;
    else if (n > 8 && strncasecmp(s, "https://", 8) == 0) skip = 8;
    else return false;
    if (s[skip] == '/' || s[skip] == '?' || s[skip] == '#' || s[skip] == ':') return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return false;
    return true;
}

/* Dotted path: non-empty segments of at most PATH_LEN_MAX bytes in all. */
static bool valid_path(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PATH_LEN_MAX || s[0] == '.' || s[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20) return false;
        if (s[i] == '.' && s[i + 1] == '.') return false;
    }
    return true;
}

/* A whole-string decimal number; false for anything else (hex, inf, nan,
 * trailing bytes). */
static bool parse_number(const char *s, double *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
              c == 'E'))
            return false;
    }
    char *end;
    double v = strtod(s, &end);
    if (end != s + n || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int parse_timeout(const char *name, yajl_val v, uint32_t *out, char *err, size_t errlen)
{
    uint64_t ms = 0;
    const char *s = scalar_text(v);
    bool ok = false;
    if (YAJL_IS_NUMBER(v)) {
        ok = YAJL_IS_INTEGER(v) && v->u.number.i >= 0;
        if (ok) ms = (uint64_t)v->u.number.i;
    } else if (s) {
        size_t n = strlen(s), i = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (n > 0 && i == n) ok = al_parse_u64(s, n, &ms) == AL_OK;   /* plain ms */
        else ok = al_parse_duration_ms(s, &ms) == AL_OK;
    }
    if (!ok)
        return bad(err, errlen, name, "timeout",
                   "expected a duration (e.g. 300ms, 2s) or a number of milliseconds");
    if (ms < 1 || ms > TIMEOUT_MAX)
        return bad(err, errlen, name, "timeout", "must be between 1ms and %us",
                   TIMEOUT_MAX / 1000u);
    *out = (uint32_t)ms;
    return AL_OK;
}

static int parse_headers(al_classifier_t *cl, yajl_val v, char *err, size_t errlen)
{
    if (!YAJL_IS_OBJECT(v))
        return bad(err, errlen, cl->name, "headers", "expected a mapping of names to strings");
    size_t n = v->u.object.len;
    if (n > HEADERS_MAX)
        return bad(err, errlen, cl->name, "headers", "at most %d headers", HEADERS_MAX);
    cl->headers = n ? al_calloc(n, sizeof *cl->headers) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *k = v->u.object.keys[i];
        const char *val = scalar_text(v->u.object.values[i]);
        size_t kl = strlen(k);
        bool ok = kl > 0 && kl < 256;
        for (size_t j = 0; ok && j < kl; j++) ok = tchar((unsigned char)k[j]);
        if (!ok)
            return bad(err, errlen, cl->name, "headers", "'%.64s' is not a valid header name", k);
        if (!val)
            return bad(err, errlen, cl->name, "headers", "the value of %.64s must be a string",
                       k);
        size_t vl = strlen(val);
        ok = vl < HEADER_BYTES_MAX;
        for (size_t j = 0; ok && j < vl; j++) {
            unsigned char c = (unsigned char)val[j];
            ok = (c >= 0x20 && c != 0x7f) || c == '\t';
        }
        if (!ok)
            return bad(err, errlen, cl->name, "headers",
                       "the value of %.64s has a control character or is too long", k);
        cl->headers[cl->n_headers].name = al_strdup(k);
        cl->headers[cl->n_headers].value = al_strdup(val);
        cl->n_headers++;
    }
    return AL_OK;
}

static const char *const HTTP_KEYS[] = {"url", "headers", "score_path", "flag_path"};
static const char *const JUDGE_KEYS[] = {"model", "prompt"};

static bool in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0) return true;
    return false;
}

/* One key of an entry whose type is known. */
static int parse_key(al_classifier_t *cl, const char *k, yajl_val v, char *err, size_t errlen)
{
    const char *s = scalar_text(v);
    const char *name = cl->name;
    if (strcmp(k, "type") == 0) return AL_OK;
    if (in_list(k, HTTP_KEYS, AL_ARRAY_LEN(HTTP_KEYS)) && cl->judge)
        return bad(err, errlen, name, k, "only for type http");
    if (in_list(k, JUDGE_KEYS, AL_ARRAY_LEN(JUDGE_KEYS)) && !cl->judge)
        return bad(err, errlen, name, k, "only for type judge");

    if (strcmp(k, "timeout") == 0) return parse_timeout(name, v, &cl->timeout_ms, err, errlen);
    if (strcmp(k, "on_error") == 0) {
        if (YAJL_IS_STRING(v) && strcmp(s, "allow") == 0) cl->on_error_block = false;
        else if (YAJL_IS_STRING(v) && strcmp(s, "block") == 0) cl->on_error_block = true;
        else return bad(err, errlen, name, k, "expected allow or block");
        return AL_OK;
    }
    if (strcmp(k, "threshold") == 0) {
        double t;
        if (!s || !parse_number(s, &t))
            return bad(err, errlen, name, k, "expected a number from 0 to 1");
        if (!(t >= 0.0 && t <= 1.0)) return bad(err, errlen, name, k, "must be from 0 to 1");
        cl->threshold = t;
        return AL_OK;
    }
    if (strcmp(k, "url") == 0) {
        if (!YAJL_IS_STRING(v) || !valid_url(s))
            return bad(err, errlen, name, k, "expected an http:// or https:// URL");
        AL_FREE(cl->url);
        cl->url = al_strdup(s);
        return AL_OK;
    }
    if (strcmp(k, "headers") == 0) {
        if (cl->headers) return bad(err, errlen, name, k, "given twice");
        return parse_headers(cl, v, err, errlen);
    }
    if (strcmp(k, "score_path") == 0 || strcmp(k, "flag_path") == 0) {
        bool flag = k[0] == 'f';
        char **dst = flag ? &cl->flag_path : &cl->score_path;
        if (flag && (YAJL_IS_NULL(v) || (YAJL_IS_STRING(v) && s[0] == '\0'))) {
            AL_FREE(*dst);       /* no verdict of the service's own */
            return AL_OK;
        }
        if (!YAJL_IS_STRING(v) || !valid_path(s))
            return bad(err, errlen, name, k,
                       "expected a dotted path such as result.score (at most %d bytes)",
                       PATH_LEN_MAX);
        free(*dst);
        *dst = al_strdup(s);
        return AL_OK;
    }
    if (strcmp(k, "model") == 0) {
        if (!s || !s[0] || strlen(s) > MODEL_NAME_MAX)
            return bad(err, errlen, name, k, "expected the name of a model or route");
        AL_FREE(cl->model);
        cl->model = al_strdup(s);
        return AL_OK;
    }
    if (strcmp(k, "prompt") == 0) {
        if (!YAJL_IS_STRING(v)) return bad(err, errlen, name, k, "expected a string");
        if (strlen(s) > PROMPT_MAX)
            return bad(err, errlen, name, k, "longer than %u bytes", PROMPT_MAX);
        if (!strstr(s, "{{text}}"))
            return bad(err, errlen, name, k, "must contain {{text}} (where the text goes)");
        AL_FREE(cl->prompt);
        cl->prompt = al_strdup(s);
        return AL_OK;
    }
    return bad(err, errlen, name, k, "unknown key");
}

int al_classifier_parse(const char *name, yajl_val v, al_classifier_t **out, char *err,
                        size_t errlen)
{
    al_classifier_t *cl = NULL;
    int rc = AL_EINVAL;
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out || !name) return AL_EINVAL;
    if (!valid_name(name)) {
        int n = snprintf(err, err ? errlen : 0, KEY_PREFIX "%.64s: ", name);
        if (err && n > 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - (size_t)n,
                     "a detector name is 1 to %d letters, digits, '_', '-' or '.'", NAME_MAX_LEN);
        return AL_EINVAL;
    }
    if (!YAJL_IS_OBJECT(v)) return bad(err, errlen, name, NULL, "expected a mapping");
    yajl_val type = al_json_get(v, "type");
    if (!type) return bad(err, errlen, name, "type", "missing (http or judge)");
    const char *ts = YAJL_IS_STRING(type) ? type->u.string : "";
    if (strcmp(ts, "http") != 0 && strcmp(ts, "judge") != 0)
        return bad(err, errlen, name, "type", "expected http or judge");

    cl = al_calloc(1, sizeof *cl);
    cl->name = al_strdup(name);
    cl->judge = ts[0] == 'j';
    cl->threshold = 0.5;
    cl->timeout_ms = cl->judge ? TIMEOUT_JUDGE_DEFAULT : TIMEOUT_HTTP_DEFAULT;
    if (!cl->judge) {
        cl->score_path = al_strdup("score");
        cl->flag_path = al_strdup("flagged");
    }
    for (size_t i = 0; i < v->u.object.len; i++) {
        rc = parse_key(cl, v->u.object.keys[i], v->u.object.values[i], err, errlen);
        if (rc) goto out;
    }
    rc = AL_EINVAL;
    if (!cl->judge && !cl->url) {
        bad(err, errlen, name, "url", "missing (where the classifier service listens)");
        goto out;
    }
    if (cl->judge && !cl->model) {
        bad(err, errlen, name, "model", "missing (a model or route of this config)");
        goto out;
    }
    if (cl->judge && !cl->prompt) cl->prompt = al_strdup(DEFAULT_PROMPT);
    rc = AL_OK;
out:
    if (rc) {
        al_classifier_free(cl);
        return rc;
    }
    *out = cl;
    return AL_OK;
}

void al_classifier_free(al_classifier_t *cl)
{
    if (!cl) return;
    for (size_t i = 0; i < cl->n_headers; i++) {
        free(cl->headers[i].name);
        free(cl->headers[i].value);
    }
    free(cl->headers);
    free(cl->name);
    free(cl->url);
    free(cl->score_path);
    free(cl->flag_path);
    free(cl->model);
    free(cl->prompt);
    free(cl);
}

void al_classifier_get_info(const al_classifier_t *cl, al_classifier_info_t *out)
{
    out->name = cl->name;
    out->judge = cl->judge;
    out->threshold = cl->threshold;
    out->on_error_block = cl->on_error_block;
    out->timeout_ms = cl->timeout_ms;
}

/* The model a judge asks: an alias, or a route's first target. */
static const al_model_t *judge_model(const al_config_t *cfg, const char *name)
{
    size_t n = strlen(name);
    const al_model_t *m = al_config_model(cfg, name, n);
    if (m) return m;
    const al_route_t *r = al_config_route(cfg, name, n);
    return r && r->n_targets ? r->targets[0].model : NULL;
}

int al_classifier_check(const al_classifier_t *cl, const al_config_t *cfg, char *err,
                        size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!cl->judge) return AL_OK;
    if (!cfg) return bad(err, errlen, cl->name, "model", "no configuration to look it up in");
    const al_model_t *m = judge_model(cfg, cl->model);
    if (!m || !m->provider)
        return bad(err, errlen, cl->name, "model", "no model or route named '%.128s'", cl->model);
    if (m->provider->type == AL_PROVIDER_SIMULATED)
        return bad(err, errlen, cl->name, "model",
                   "'%.128s' is served by the simulated provider '%.64s', whose answers carry "
                   "no score; a judge needs an openai or anthropic provider",
                   m->alias, m->provider->name);
    return AL_OK;
}

/* --- the answer ------------------------------------------------------------ */

/* Follow a dotted path: object members by name, array elements by index. */
static yajl_val walk(yajl_val v, const char *path)
{
    char seg[PATH_LEN_MAX + 1];
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n > PATH_LEN_MAX) return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (YAJL_IS_OBJECT(v)) {
            v = al_json_get(v, seg);
        } else if (YAJL_IS_ARRAY(v)) {
            uint64_t i;
            if (al_parse_u64(seg, n, &i) != AL_OK || i >= v->u.array.len) return NULL;
            v = v->u.array.values[i];
        } else {
            return NULL;
        }
        p += n;
        if (*p == '.') p++;
    }
    return v;
}

/* The answer as a tree: NUL-free, at most 64 deep, one JSON value. */
static yajl_val parse_answer(const char *p, size_t len)
{
    char ebuf[128];
    if (!p || len == 0 || memchr(p, '\0', len) || al_json_depth(p, len) > 64) return NULL;
    return yajl_tree_parse(p, ebuf, sizeof ebuf);
}

static int http_verdict(al_classify_job_t *j, al_verdict_t *v)
{
    int rc = AL_EPARSE;
    yajl_val root = parse_answer(j->ans.p, j->ans.len);
    if (!root) return AL_EPARSE;
    yajl_val s = walk(root, j->score_path);
    const char *st = scalar_text(s);
    double score;
    if (!st || !parse_number(st, &score)) goto out;
    bool flagged = score >= j->threshold;
    if (j->flag_path) {
        yajl_val f = walk(root, j->flag_path);
        if (YAJL_IS_TRUE(f)) flagged = true;
        else if (YAJL_IS_FALSE(f) || !f || YAJL_IS_NULL(f)) (void)0;
        else if (YAJL_IS_NUMBER(f)) flagged |= YAJL_IS_INTEGER(f) ? f->u.number.i != 0
                                                                 : f->u.number.d != 0.0;
        else if (YAJL_IS_STRING(f) && strcmp(f->u.string, "true") == 0) flagged = true;
        else if (YAJL_IS_STRING(f) && strcmp(f->u.string, "false") == 0) (void)0;
        else goto out;   /* something else where the verdict should be */
    }
    v->score = score;
    v->flagged = flagged;
    rc = AL_OK;
out:
    yajl_tree_free(root);
    return rc;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Read a decimal at p (digits with at most one '.'); returns its length. */
static size_t read_decimal(const char *p, size_t len, double *out)
{
    char buf[40];
    size_t i = 0, k = 0;
    bool dot = false;
    while (i < len && (is_digit(p[i]) || (p[i] == '.' && !dot && i + 1 < len && is_digit(p[i + 1])))) {
        if (p[i] == '.') dot = true;
        if (k < sizeof buf - 1) buf[k++] = p[i];
        i++;
    }
    buf[k] = '\0';
    *out = k ? strtod(buf, NULL) : 0.0;
    return i;
}

static double clamp01(double x)
{
    return x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
}

/* The judge's score: the first number of the answer ("0.8", "Score: .3",
 * "85%", "7/10"), clamped to [0, 1]; when there is none, the first of the
 * words yes/unsafe (1) or no/safe (0).  AL_EPARSE when neither is there. */
static int judge_score(const char *p, size_t len, double *out)
{
    for (size_t i = 0; i < len; i++) {
        bool start = is_digit(p[i]) || (p[i] == '.' && i + 1 < len && is_digit(p[i + 1]));
        if (!start) continue;
        if (i > 0 && is_alpha(p[i - 1])) {       /* inside a word: "gpt4", "v2" */
            while (i + 1 < len && (is_digit(p[i + 1]) || p[i + 1] == '.')) i++;
            continue;
        }
        double x;
        size_t n = read_decimal(p + i, len - i, &x);
        bool neg = i > 0 && p[i - 1] == '-' && (i == 1 || !is_digit(p[i - 2]));
        size_t e = i + n;
        if (e < len && p[e] == '%') {
            x /= 100.0;
        } else if (e + 1 < len && p[e] == '/' && (is_digit(p[e + 1]) || p[e + 1] == '.')) {
            double d;
            read_decimal(p + e + 1, len - e - 1, &d);
            if (d > 0.0) x /= d;
        }
        *out = neg ? 0.0 : clamp01(x);
        return AL_OK;
    }
    static const struct {
        const char *w;
        double score;
    } words[] = {{"yes", 1.0}, {"unsafe", 1.0}, {"no", 0.0}, {"safe", 0.0}};
    for (size_t i = 0; i < len;) {
        if (!is_alpha(p[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < len && is_alpha(p[i])) i++;
        for (size_t w = 0; w < AL_ARRAY_LEN(words); w++)
            if (al_mem_ieq(p + s, i - s, words[w].w, strlen(words[w].w))) {
                *out = words[w].score;
                return AL_OK;
            }
    }
    return AL_EPARSE;
}

/* choices[0].message.content of a chat completion: a string, or the text
 * of its first text part. */
static const char *chat_content(yajl_val root)
{
    yajl_val c = walk(root, "choices.0.message.content");
    if (YAJL_IS_STRING(c)) return c->u.string;
    if (YAJL_IS_ARRAY(c))
        for (size_t i = 0; i < c->u.array.len; i++) {
            yajl_val t = al_json_get(c->u.array.values[i], "text");
            if (YAJL_IS_STRING(t)) return t->u.string;
        }
    return NULL;
}

static int judge_verdict(al_classify_job_t *j, al_verdict_t *v)
{
    al_buf_t conv;
    const char *p = j->ans.p;
    size_t len = j->ans.len;
    int rc = AL_EPARSE;
    yajl_val root = NULL;
    al_buf_init(&conv, ANSWER_MAX * 2);
    if (j->anthropic) {
        al_usage_t u;
        if (!p || al_anth_response(p, len, "judge", &conv, &u) != AL_OK || conv.err) goto out;
        p = conv.p;
        len = conv.len;
    }
    root = parse_answer(p, len);
    const char *text = root ? chat_content(root) : NULL;
    double score;
    if (!text || judge_score(text, strlen(text), &score) != AL_OK) goto out;
    v->score = score;
    v->flagged = score >= j->threshold;
    rc = AL_OK;
out:
    if (root) yajl_tree_free(root);
    al_buf_free(&conv);
    return rc;
}

/* --- the job ----------------------------------------------------------------- */

static void job_free(al_classify_job_t *j)
{
    al_buf_free(&j->ans);
    free(j->score_path);
    free(j->flag_path);
    free(j);
}

static void on_head(void *ud, int status, const char *ct, const char *retry_after)
{
    AL_UNUSED(ct);
    AL_UNUSED(retry_after);
    al_classify_job_t *j = ud;
    j->status = status;
}

static int on_data(void *ud, const char *p, size_t len)
{
    al_classify_job_t *j = ud;
    /* A refusal's body says nothing we use: stop reading it. */
    if (j->status < 200 || j->status > 299 || al_buf_append(&j->ans, p, len) != AL_OK) {
        j->refused = true;
        return -1;
    }
    return 0;
}

static void on_done(void *ud, al_up_result_t res, const char *detail)
{
    al_classify_job_t *j = ud;
    al_verdict_t v = {.rc = AL_EIO};
    j->x = NULL;   /* the upstream frees the transfer after this call */
    bool ok2xx = j->status >= 200 && j->status <= 299;
    if (j->status && !ok2xx) {
        v.rc = AL_EIO;
        al_debug("detector %s: HTTP %d", j->name, j->status);
    } else if (j->refused) {
        v.rc = AL_EPARSE;
        al_debug("detector %s: answer larger than %u bytes", j->name, ANSWER_MAX);
    } else if (res == AL_UP_OK && ok2xx) {
        v.rc = j->judge ? judge_verdict(j, &v) : http_verdict(j, &v);
        if (v.rc) al_debug("detector %s: unreadable answer", j->name);
    } else {
        v.rc = res == AL_UP_CONNECT_TIMEOUT || res == AL_UP_FIRST_BYTE_TIMEOUT ||
                       res == AL_UP_TOTAL_TIMEOUT || res == AL_UP_IDLE_TIMEOUT
                   ? AL_ETIMEDOUT
                   : AL_EIO;
        al_debug("detector %s: %s (%s)", j->name, al_up_result_name(res), detail ? detail : "");
    }
    if (v.rc != AL_OK) {
        v.score = 0.0;
        v.flagged = false;
    }
    v.ms = (double)(al_now_ns() - j->t0) / 1e6;
    j->in_cb = true;
    j->cb(j->ud, &v);
    job_free(j);
}

static struct curl_slist *add_header(struct curl_slist *h, bool *fail, const char *name,
                                     const char *prefix, const char *value)
{
    al_buf_t line;
    if (*fail) return h;
    al_buf_init(&line, HEADER_BYTES_MAX + 512);
    al_buf_puts(&line, name);
    al_buf_puts(&line, ": ");
    al_buf_puts(&line, prefix);
    al_buf_puts(&line, value);
    struct curl_slist *n = line.err ? NULL : curl_slist_append(h, line.p);
    if (line.p) explicit_bzero(line.p, line.len);   /* may hold a key */
    al_buf_free(&line);
    if (!n) {
        *fail = true;
        return h;
    }
    return n;
}

/* How many times the prompt holds {{text}}. */
static size_t text_uses(const char *prompt)
{
    size_t k = 0;
    for (const char *q = prompt; (q = strstr(q, "{{text}}")); q += 8) k++;
    return k;
}

/* The judge's chat request: one user message, the prompt with every
 * {{text}} replaced by the text. */
static int judge_body(const al_classifier_t *cl, const al_model_t *m, const char *text,
                      size_t len, al_buf_t *out)
{
    al_buf_t msg;
    size_t plen = strlen(cl->prompt), k = text_uses(cl->prompt);
    if (k && len > TEXT_MAX / k) return AL_ETOOBIG;
    al_buf_init(&msg, plen + k * len + 1);
    for (const char *q = cl->prompt;;) {
        const char *hit = strstr(q, "{{text}}");
        if (!hit) {
            al_buf_puts(&msg, q);
            break;
        }
        al_buf_append(&msg, q, (size_t)(hit - q));
        al_buf_append(&msg, text, len);
        q = hit + 8;
    }
    al_buf_puts(out, "{\"model\":");
    al_buf_json_str(out, m->upstream_model, strlen(m->upstream_model));
    al_buf_puts(out, ",\"messages\":[{\"role\":\"user\",\"content\":");
    al_buf_json_str(out, msg.p ? msg.p : "", msg.len);
    al_buf_printf(out, "}],\"max_tokens\":%d,\"temperature\":0}", JUDGE_MAX_TOKENS);
    int rc = msg.err ? msg.err : out->err;
    al_buf_free(&msg);
    return rc;
}

int al_classify_start(const al_classifier_t *cl, al_upstream_t *up, const al_config_t *cfg,
                      const char *text, size_t len, al_classify_done_fn cb, void *ud,
                      al_classify_job_t **out)
{
    al_buf_t url, body;
    struct curl_slist *h = NULL;
    bool hfail = false;
    const al_model_t *m = NULL;
    int rc, brc = AL_OK;

    if (out) *out = NULL;
    if (!cl || !up || !cb || !out || (!text && len)) return AL_EINVAL;
    if (!text) text = "";
    if (len > TEXT_MAX) return AL_ETOOBIG;
    if (cl->judge) {
        m = cfg ? judge_model(cfg, cl->model) : NULL;
        if (!m || !m->provider) {
            al_warn("detector %s: no model or route '%s' in this configuration", cl->name,
                    cl->model);
            return AL_EINVAL;
        }
        if (m->provider->type == AL_PROVIDER_SIMULATED || !m->provider->base_url) {
            al_warn("detector %s: model '%s' is served by the simulated provider, which "
                    "cannot judge", cl->name, m->alias);
            return AL_EIO;
        }
    }

    al_classify_job_t *j = al_calloc(1, sizeof *j);
    j->cb = cb;
    j->ud = ud;
    j->judge = cl->judge;
    j->threshold = cl->threshold;
    snprintf(j->name, sizeof j->name, "%s", cl->name);
    al_buf_init(&j->ans, ANSWER_MAX);
    al_buf_init(&url, URL_MAX + 64);
    /* JSON escaping at most sextuples a byte ("\u001f"). */
    size_t uses = cl->judge ? text_uses(cl->prompt) : 1;
    size_t raw = (cl->judge ? strlen(cl->prompt) : strlen(cl->name)) +
                 (uses && len > TEXT_MAX / uses ? TEXT_MAX : uses * len);
    al_buf_init(&body, raw * 6 + 4096);

    h = add_header(h, &hfail, "Content-Type", "", "application/json");
    h = add_header(h, &hfail, "Accept", "", "application/json");
    if (!hfail) {   /* "Expect:" alone: no 100-continue round trip */
        struct curl_slist *n = curl_slist_append(h, "Expect:");
        if (n) h = n;
        else hfail = true;
    }
    if (!cl->judge) {
        j->score_path = al_strdup(cl->score_path);
        j->flag_path = cl->flag_path ? al_strdup(cl->flag_path) : NULL;
        al_buf_puts(&url, cl->url);
        al_buf_puts(&body, "{\"text\":");
        al_buf_json_str(&body, text, len);
        al_buf_puts(&body, ",\"detector\":");
        al_buf_json_str(&body, cl->name, strlen(cl->name));
        al_buf_putc(&body, '}');
        for (size_t i = 0; i < cl->n_headers; i++)
            h = add_header(h, &hfail, cl->headers[i].name, "", cl->headers[i].value);
    } else {
        const al_provider_t *p = m->provider;
        j->anthropic = p->type == AL_PROVIDER_ANTHROPIC;
        al_buf_puts(&url, p->base_url);
        al_buf_puts(&url, j->anthropic ? "/messages" : "/chat/completions");
        if (j->anthropic) {
            al_buf_t oa;
            char aerr[160];
            al_buf_init(&oa, body.max);
            brc = judge_body(cl, m, text, len, &oa);
            if (brc == AL_OK)
                brc = al_anth_request(oa.p, oa.len, m->upstream_model, JUDGE_MAX_TOKENS, &body,
                                      aerr, sizeof aerr);
            al_buf_free(&oa);
        } else {
            brc = judge_body(cl, m, text, len, &body);
        }
        if (p->api_key && p->api_key[0]) {
            if (j->anthropic) h = add_header(h, &hfail, "x-api-key", "", p->api_key);
            else h = add_header(h, &hfail, "Authorization", "Bearer ", p->api_key);
        }
        if (j->anthropic)
            h = add_header(h, &hfail, "anthropic-version", "",
                           p->anthropic_version ? p->anthropic_version : "2023-06-01");
        for (size_t i = 0; i < p->n_headers; i++)
            h = add_header(h, &hfail, p->headers[i].name, "", p->headers[i].value);
    }
    if (!brc) brc = url.err ? url.err : body.err;
    if (brc || hfail) {
        rc = hfail ? AL_ENOMEM : brc;
        curl_slist_free_all(h);
        al_buf_free(&url);
        al_buf_free(&body);
        job_free(j);
        return rc;
    }

    al_xfer_opts_t o = {
        .url = url.p,
        .headers = h,
        .body_len = body.len,
        .connect_timeout_ms = cl->timeout_ms,
        .total_timeout_ms = cl->timeout_ms,
    };
    if (m && m->provider->connect_timeout_ms && m->provider->connect_timeout_ms < cl->timeout_ms)
        o.connect_timeout_ms = m->provider->connect_timeout_ms;
    o.body = al_buf_take(&body, NULL);
    static const al_xfer_cbs_t cbs = {on_head, on_data, on_done};
    j->t0 = al_now_ns();
    rc = al_upstream_post(up, &o, &cbs, j, &j->x);
    al_buf_free(&url);
    if (rc != AL_OK) {
        job_free(j);
        return rc;
    }
    *out = j;
    return AL_OK;
}

void al_classify_cancel(al_classify_job_t *j)
{
    if (!j) return;
    /* From inside its own callback: on_done frees the job when cb returns. */
    if (j->in_cb) return;
    if (j->x) al_xfer_cancel(j->x);
    job_free(j);
}
