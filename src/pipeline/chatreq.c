/* chatreq.c - one-pass validating scan of an OpenAI-style request body, and
 * the byte-for-byte rewrite that replaces the model and forces usage.
 *
 * The scanner walks the body once with an explicit stack of at most 64
 * frames (no recursion, no allocation).  It checks the RFC 8259 grammar
 * (strings: no raw control characters, valid escapes, surrogate pairs, valid
 * UTF-8; numbers: the exact grammar; literals; nothing but whitespace after
 * the top-level object).  Each value gets a "role" from its parent frame and
 * its member name (e.g. the value of "messages" at the top, element 0 of
 * "tools"), and each frame a "ctx" from the role that opened it; that is how
 * the fields of al_chatreq_t are found without building a tree.  Strings are
 * decoded on the fly into a sink that counts bytes or captures a bounded copy
 * (the model, tool name, ...).  Member names are decoded too, so
 * "mod\u0065l" is "model", exactly as the provider will read it.  The pass
 * notes where the last element of "messages" lies; only that element is
 * scanned a second time, to fold its content into the FNV-1a hash (hashing
 * every message on the way cost more than the whole rest of the scan).
 *
 * Choices documented here (the header is the contract):
 * - Duplicate members: a second top-level "model" or "stream" is refused
 *   (authorization must see the value every provider reads).  Otherwise the
 *   last one wins, at the top level ("messages", ...) and inside the objects
 *   we read, as Python's json and most provider stacks do.
 * - null is accepted as "absent" for the OpenAI parameters that are nullable
 *   (stream, stream_options, include_usage, max_tokens,
 *   max_completion_tokens, tools, tool_choice, response_format); "model":
 *   null is "model must be a string".
 * - prompt_bytes counts the decoded bytes of string VALUES under
 *   messages/input/prompt/system; member names ("role", "content") are not
 *   counted.
 * - tool_choice objects map by their "type": "auto" -> "auto", "none" ->
 *   "none", "any" (Anthropic) -> "required", anything else -> "function".
 *   An unknown tool_choice string leaves tool_choice "" (the provider judges).
 * - tool_name is tools[0].function.name, or tools[0].name (Anthropic shape)
 *   when there is no function.name; tool_choice_name likewise from
 *   tool_choice.function.name or tool_choice.name. */
#include "pipeline/chatreq.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64
#define FNV_OFFSET 0x811c9dc5u
#define FNV_PRIME 0x01000193u
#define KEY_MAX 32   /* longest member name we care about is shorter */

enum ctx {
    C_NONE, C_TOP, C_STREAM_OPTIONS, C_MESSAGES, C_MESSAGE, C_CONTENT, C_PART,
    C_TOOLS, C_TOOL0, C_TOOL0_FN, C_TOOL_CHOICE, C_TOOL_CHOICE_FN, C_RF, C_INPUT, C_USAGE, C_CHOICES,
};

enum role {
    R_NONE, R_TOP, R_MODEL, R_STREAM, R_STREAM_OPTIONS, R_INCLUDE_USAGE,
    R_MAXC, R_MAXT, R_MESSAGES, R_MESSAGE, R_CONTENT, R_PART, R_PART_TEXT,
    R_INPUT, R_PROMPT, R_SYSTEM, R_TOOLS, R_TOOL0, R_TOOL0_FN, R_TOOL_NAME,
    R_TOOL_NAME_PLAIN, R_TOOL_CHOICE, R_TOOL_CHOICE_TYPE, R_RF, R_RF_TYPE,
    R_ENC_FORMAT, R_DIMENSIONS, R_TC_FN, R_TC_NAME, R_USAGE, R_CHOICES, R_N, R_USER,
};

/* Which prompt byte counter string values under a frame feed. */
enum counter { K_NONE, K_MESSAGES, K_INPUT, K_PROMPT, K_SYSTEM, K_COUNT };

typedef struct frame {
    uint8_t obj;       /* 1 object, 0 array */
    uint8_t ctx;
    uint8_t counter;
    uint32_t n;        /* members or elements started so far */
    uint32_t start;    /* offset of the opening bracket */
} frame_t;

typedef struct scan {
    const unsigned char *s;
    size_t len, i;
    al_chatreq_t *rq;
    char *err;
    size_t errlen;
    frame_t st[MAX_DEPTH];
    int depth;
    uint64_t bytes[K_COUNT];
    int64_t maxc, maxt;
    uint32_t msg_hash;
    bool hash_on;              /* fold content into msg_hash (second pass only) */
    al_span_t last_msg;        /* the last element of "messages", if an object */
    char fn_name[65], plain_name[65];
    char tc_type[16];
    unsigned seen_model, seen_stream; /* top-level occurrences */
    bool response;             /* scanning a provider response: only usage and
                                  choices are read, no request rules apply */
} scan_t;

/* Where the decoded bytes of one string go. */
typedef struct sink {
    uint64_t *count;
    uint32_t *hash;
    char *cap;         /* NULL: no capture */
    size_t capmax;     /* bytes kept; cap has capmax + 1 bytes */
    size_t caplen;     /* total decoded length (may exceed capmax) */
} sink_t;

static int fail(scan_t *sc, const char *why)
{
    if (sc->err && sc->errlen)
        snprintf(sc->err, sc->errlen, "invalid JSON at byte %zu: %s", sc->i, why);
    return AL_EPARSE;
}

static int type_error(scan_t *sc, const char *msg)
{
    if (sc->err && sc->errlen) snprintf(sc->err, sc->errlen, "%s", msg);
    return AL_EPARSE;
}

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void skip_ws(scan_t *sc)
{
    while (sc->i < sc->len && is_ws(sc->s[sc->i])) sc->i++;
}

static void sink_put(sink_t *k, const unsigned char *p, size_t n)
{
    if (k->count) *k->count += n;
    if (k->hash) {
        uint32_t h = *k->hash;
        for (size_t j = 0; j < n; j++) h = (h ^ p[j]) * FNV_PRIME;
        *k->hash = h;
    }
    if (k->cap && k->caplen < k->capmax) {
        size_t take = AL_MIN(n, k->capmax - k->caplen);
        memcpy(k->cap + k->caplen, p, take);
        k->cap[k->caplen + take] = '\0';
    }
    k->caplen += n;
}

/* Length of the valid UTF-8 sequence at p (2..4 bytes, p[0] >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;   /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0;  /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;   /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0;  /* > U+10FFFF */
        return 4;
    }
    return 0;
}

static bool hex4(const unsigned char *p, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    if (n < 4) return false;
    for (int j = 0; j < 4; j++) {
        unsigned char c = p[j];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return false;
    }
    *out = v;
    return true;
}

static size_t utf8_encode(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the backslash of an escape: decode it into k, advance past it. */
static int scan_escape(scan_t *sc, sink_t *k)
{
    const unsigned char *s = sc->s;
    unsigned char one;
    sc->i++;
    if (sc->i >= sc->len) return fail(sc, "unterminated string");
    switch (s[sc->i]) {
    case '"': one = '"'; break;
    case '\\': one = '\\'; break;
    case '/': one = '/'; break;
    case 'b': one = '\b'; break;
    case 'f': one = '\f'; break;
    case 'n': one = '\n'; break;
    case 'r': one = '\r'; break;
    case 't': one = '\t'; break;
    case 'u': {
        uint32_t cp, lo;
        unsigned char enc[4];
        if (!hex4(s + sc->i + 1, sc->len - sc->i - 1, &cp))
            return fail(sc, "bad \\u escape");
        sc->i += 5;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(sc, "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (sc->len - sc->i < 6 || s[sc->i] != '\\' || s[sc->i + 1] != 'u' ||
                !hex4(s + sc->i + 2, 4, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return fail(sc, "lone high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            sc->i += 6;
        }
        sink_put(k, enc, utf8_encode(cp, enc));
        return AL_OK;
    }
    default:
        return fail(sc, "bad escape");
    }
    sink_put(k, &one, 1);
    sc->i++;
    return AL_OK;
}

/* 1 for bytes that stand for themselves inside a string: printable ASCII
 * other than '"' and '\\'.  Everything else takes the slow path. */
#define ROW16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
static const uint8_t str_plain[256] = {
    ROW16(0), ROW16(0),                                       /* 0x00-0x1F */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,           /* 0x20-0x2F: '"' */
    ROW16(1), ROW16(1),                                       /* 0x30-0x4F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,           /* 0x50-0x5F: '\\' */
    ROW16(1), ROW16(1),                                       /* 0x60-0x7F */
    ROW16(0), ROW16(0), ROW16(0), ROW16(0),                   /* 0x80-0xBF */
    ROW16(0), ROW16(0), ROW16(0), ROW16(0),                   /* 0xC0-0xFF */
};

/* At the opening quote: validate and decode the string into k. */
/* True when none of the 8 bytes in x needs attention inside a string: no
 * control character, '"', '\\' or non-ASCII byte.  A false "no" only sends
 * the caller to the byte-by-byte loop, which decides exactly. */
static inline bool plain8(uint64_t x)
{
    const uint64_t lo = 0x0101010101010101ull, hi = 0x8080808080808080ull;
    uint64_t q = x ^ (lo * '"'), b = x ^ (lo * '\\');
    return ((((x - lo * 0x20) & ~x) | ((q - lo) & ~q) | ((b - lo) & ~b) | x) & hi) == 0;
}

static int scan_string(scan_t *sc, sink_t *k)
{
    const unsigned char *s = sc->s;
    size_t run;
    int rc;
    sc->i++;
    run = sc->i;
    for (;;) {
        size_t i = sc->i;
        const size_t len = sc->len;
        uint64_t x;
        while (i + 8 <= len) {
            memcpy(&x, s + i, 8);
            if (!plain8(x)) break;
            i += 8;
        }
        while (i < len && str_plain[s[i]]) i++;
        sc->i = i;
        if (sc->i >= sc->len) return fail(sc, "unterminated string");
        unsigned char c = s[sc->i];
        if (c == '"') {
            sink_put(k, s + run, sc->i - run);
            sc->i++;
            return AL_OK;
        }
        if (c == '\\') {
            sink_put(k, s + run, sc->i - run);
            if ((rc = scan_escape(sc, k)) != AL_OK) return rc;
            run = sc->i;
            continue;
        }
        if (c < 0x80) return fail(sc, "control character in string");
        size_t n = utf8_seq(s + sc->i, sc->len - sc->i);
        if (n == 0) return fail(sc, "invalid UTF-8 in string");
        sc->i += n;
    }
}

/* At '-' or a digit: check the number grammar; *is_int when it has neither
 * fraction nor exponent, *neg when it starts with '-'. */
static int scan_number(scan_t *sc, bool *is_int, bool *neg)
{
    const unsigned char *s = sc->s;
    size_t n = sc->len;
    *is_int = true;
    *neg = false;
    if (s[sc->i] == '-') {
        *neg = true;
        sc->i++;
    }
    if (sc->i >= n) return fail(sc, "bad number");
    if (s[sc->i] == '0') {
        sc->i++;
    } else if (s[sc->i] >= '1' && s[sc->i] <= '9') {
        while (sc->i < n && s[sc->i] >= '0' && s[sc->i] <= '9') sc->i++;
    } else {
        return fail(sc, "bad number");
    }
    if (sc->i < n && s[sc->i] == '.') {
        *is_int = false;
        sc->i++;
        if (sc->i >= n || s[sc->i] < '0' || s[sc->i] > '9') return fail(sc, "bad number");
        while (sc->i < n && s[sc->i] >= '0' && s[sc->i] <= '9') sc->i++;
    }
    if (sc->i < n && (s[sc->i] == 'e' || s[sc->i] == 'E')) {
        *is_int = false;
        sc->i++;
        if (sc->i < n && (s[sc->i] == '+' || s[sc->i] == '-')) sc->i++;
        if (sc->i >= n || s[sc->i] < '0' || s[sc->i] > '9') return fail(sc, "bad number");
        while (sc->i < n && s[sc->i] >= '0' && s[sc->i] <= '9') sc->i++;
    }
    /* A digit right after "0" ("01") is caught by the caller: it is not a
     * valid continuation after a value. */
    return AL_OK;
}

static int scan_literal(scan_t *sc, const char *lit, size_t n)
{
    if (sc->len - sc->i < n || memcmp(sc->s + sc->i, lit, n) != 0)
        return fail(sc, "bad literal");
    sc->i += n;
    return AL_OK;
}

static bool key_is(const char *k, size_t klen, const char *lit)
{
    size_t n = strlen(lit);
    return klen == n && memcmp(k, lit, n) == 0;
}

static enum role top_key_role(const char *k, size_t n)
{
    switch (k[0]) {
    case 'm':
        if (key_is(k, n, "model")) return R_MODEL;
        if (key_is(k, n, "messages")) return R_MESSAGES;
        if (key_is(k, n, "max_tokens")) return R_MAXT;
        if (key_is(k, n, "max_completion_tokens")) return R_MAXC;
        break;
    case 's':
        if (key_is(k, n, "stream")) return R_STREAM;
        if (key_is(k, n, "stream_options")) return R_STREAM_OPTIONS;
        if (key_is(k, n, "system")) return R_SYSTEM;
        break;
    case 'i':
        if (key_is(k, n, "input")) return R_INPUT;
        break;
    case 'p':
        if (key_is(k, n, "prompt")) return R_PROMPT;
        break;
    case 't':
        if (key_is(k, n, "tools")) return R_TOOLS;
        if (key_is(k, n, "tool_choice")) return R_TOOL_CHOICE;
        break;
    case 'r':
        if (key_is(k, n, "response_format")) return R_RF;
        break;
    case 'e':
        if (key_is(k, n, "encoding_format")) return R_ENC_FORMAT;
        break;
    case 'd':
        if (key_is(k, n, "dimensions")) return R_DIMENSIONS;
        break;
    case 'u':
        if (key_is(k, n, "usage")) return R_USAGE; /* responses: where the tokens are */
        if (key_is(k, n, "user")) return R_USER;   /* the end user, for the audit trail */
        break;
    case 'n':
        if (key_is(k, n, "n")) return R_N;
        break;
    case 'c':
        if (key_is(k, n, "choices")) return R_CHOICES; /* responses and stream chunks */
        break;
    }
    return R_NONE;
}

static enum role key_role(uint8_t ctx, const char *k, size_t n, bool truncated)
{
    if (truncated || n == 0) return R_NONE;
    switch (ctx) {
    case C_TOP: return top_key_role(k, n);
    case C_STREAM_OPTIONS: return key_is(k, n, "include_usage") ? R_INCLUDE_USAGE : R_NONE;
    case C_MESSAGE: return key_is(k, n, "content") ? R_CONTENT : R_NONE;
    case C_PART: return key_is(k, n, "text") ? R_PART_TEXT : R_NONE;
    case C_TOOL0:
        if (key_is(k, n, "function")) return R_TOOL0_FN;
        if (key_is(k, n, "name")) return R_TOOL_NAME_PLAIN;
        return R_NONE;
    case C_TOOL0_FN: return key_is(k, n, "name") ? R_TOOL_NAME : R_NONE;
    case C_TOOL_CHOICE:
        if (key_is(k, n, "type")) return R_TOOL_CHOICE_TYPE;
        if (key_is(k, n, "function")) return R_TC_FN;
        if (key_is(k, n, "name")) return R_TC_NAME;   /* Anthropic {"type":"tool","name"} */
        return R_NONE;
    case C_TOOL_CHOICE_FN: return key_is(k, n, "name") ? R_TC_NAME : R_NONE;
    case C_RF: return key_is(k, n, "type") ? R_RF_TYPE : R_NONE;
    default: return R_NONE;
    }
}

/* A member of a top-level (or read) object starts: forget what an earlier
 * member of the same name set, so the last one wins. */
static void on_key(scan_t *sc, enum role r)
{
    al_chatreq_t *rq = sc->rq;
    switch (r) {
    case R_MODEL:
        rq->model = (al_span_t){0, 0};
        rq->model_name[0] = '\0';
        rq->model_name_len = 0;
        break;
    case R_STREAM: rq->stream = false; break;
    case R_STREAM_OPTIONS:
        rq->stream_options = rq->stream_options_null = (al_span_t){0, 0};
        rq->include_usage = (al_span_t){0, 0};
        rq->include_usage_true = false;
        break;
    case R_INCLUDE_USAGE:
        rq->include_usage = (al_span_t){0, 0};
        rq->include_usage_true = false;
        break;
    case R_MAXC: sc->maxc = -1; break;
    case R_MAXT: sc->maxt = -1; break;
    case R_MESSAGES:
        rq->n_messages = 0;
        sc->bytes[K_MESSAGES] = 0;
        sc->last_msg = (al_span_t){0, 0};
        break;
    case R_CONTENT: sc->msg_hash = FNV_OFFSET; break;
    case R_INPUT:
        rq->n_inputs = 0;
        sc->bytes[K_INPUT] = 0;
        break;
    case R_PROMPT: sc->bytes[K_PROMPT] = 0; break;
    case R_SYSTEM: sc->bytes[K_SYSTEM] = 0; break;
    case R_TOOLS:
        rq->has_tools = false;
        sc->fn_name[0] = sc->plain_name[0] = '\0';
        break;
    case R_TOOL_NAME: sc->fn_name[0] = '\0'; break;
    case R_TOOL_NAME_PLAIN: sc->plain_name[0] = '\0'; break;
    case R_TOOL_CHOICE:
        rq->tool_choice[0] = '\0';
        rq->tool_choice_name[0] = '\0';
        sc->tc_type[0] = '\0';
        break;
    case R_TC_NAME: rq->tool_choice_name[0] = '\0'; break;
    case R_TOOL_CHOICE_TYPE: sc->tc_type[0] = '\0'; break;
    case R_RF:
    case R_RF_TYPE: rq->response_format[0] = '\0'; break;
    case R_ENC_FORMAT: rq->encoding_base64 = false; break;
    case R_USAGE: rq->usage = (al_span_t){0, 0}; break;
    case R_CHOICES: rq->n_choices = -1; break;
    case R_DIMENSIONS: rq->dimensions = 0; break;
    case R_N: rq->n = 1; break;
    case R_USER: rq->user[0] = '\0'; break;
    default: break;
    }
}

/* The type error for a value of role r starting with byte c, or NULL. */
static const char *type_check(enum role r, unsigned char c)
{
    bool num = c == '-' || (c >= '0' && c <= '9');
    switch (r) {
    case R_MODEL: return c == '"' ? NULL : "model must be a string";
    case R_USAGE: return c == '{' || c == 'n' ? NULL : "usage must be an object";
    case R_CHOICES: return c == '[' || c == 'n' ? NULL : "choices must be an array";
    case R_STREAM:
        return c == 't' || c == 'f' || c == 'n' ? NULL : "stream must be a boolean";
    case R_INCLUDE_USAGE:
        return c == 't' || c == 'f' || c == 'n' ? NULL
                                                : "stream_options.include_usage must be a boolean";
    case R_STREAM_OPTIONS:
        return c == '{' || c == 'n' ? NULL : "stream_options must be an object";
    case R_MAXC:
        return num || c == 'n' ? NULL : "max_completion_tokens must be a non-negative integer";
    case R_MAXT: return num || c == 'n' ? NULL : "max_tokens must be a non-negative integer";
    case R_N: return num || c == 'n' ? NULL : "n must be an integer from 1 to 128";
    case R_MESSAGES: return c == '[' ? NULL : "messages must be an array";
    case R_INPUT: return c == '"' || c == '[' ? NULL : "input must be a string or an array";
    case R_TOOLS: return c == '[' || c == 'n' ? NULL : "tools must be an array";
    case R_TOOL_CHOICE:
        return c == '"' || c == '{' || c == 'n' ? NULL
                                                : "tool_choice must be a string or an object";
    case R_RF: return c == '{' || c == 'n' ? NULL : "response_format must be an object";
    default: return NULL;
    }
}

static uint8_t ctx_for_object(enum role r)
{
    switch (r) {
    case R_TOP: return C_TOP;
    case R_STREAM_OPTIONS: return C_STREAM_OPTIONS;
    case R_MESSAGE: return C_MESSAGE;
    case R_PART: return C_PART;
    case R_TOOL0: return C_TOOL0;
    case R_TOOL0_FN: return C_TOOL0_FN;
    case R_TOOL_CHOICE: return C_TOOL_CHOICE;
    case R_TC_FN: return C_TOOL_CHOICE_FN;
    case R_RF: return C_RF;
    case R_USAGE: return C_USAGE;
    default: return C_NONE;
    }
}

static uint8_t ctx_for_array(enum role r)
{
    switch (r) {
    case R_MESSAGES: return C_MESSAGES;
    case R_CONTENT: return C_CONTENT;
    case R_TOOLS: return C_TOOLS;
    case R_INPUT: return C_INPUT;
    case R_CHOICES: return C_CHOICES;
    default: return C_NONE;
    }
}

static uint8_t counter_for(const scan_t *sc, enum role r)
{
    switch (r) {
    case R_MESSAGES: return K_MESSAGES;
    case R_INPUT: return K_INPUT;
    case R_PROMPT: return K_PROMPT;
    case R_SYSTEM: return K_SYSTEM;
    default: return sc->depth ? sc->st[sc->depth - 1].counter : K_NONE;
    }
}

/* The role of the next element of the array frame f (f->n not yet bumped). */
static enum role element_role(scan_t *sc, frame_t *f)
{
    switch (f->ctx) {
    case C_MESSAGES:
        sc->last_msg = (al_span_t){0, 0};
        return R_MESSAGE;
    case C_CONTENT: return R_PART;
    case C_TOOLS: return f->n == 0 ? R_TOOL0 : R_NONE;
    default: return R_NONE;
    }
}

static void on_close(scan_t *sc, const frame_t *f)
{
    al_chatreq_t *rq = sc->rq;
    switch (f->ctx) {
    case C_STREAM_OPTIONS:
        rq->stream_options = (al_span_t){f->start, (uint32_t)(sc->i + 1 - f->start)};
        break;
    case C_CHOICES: rq->n_choices = (int32_t)f->n; break;
    case C_USAGE: rq->usage = (al_span_t){f->start, (uint32_t)(sc->i + 1 - f->start)}; break;
    case C_MESSAGE:
        sc->last_msg = (al_span_t){f->start, (uint32_t)(sc->i + 1 - f->start)};
        break;
    case C_MESSAGES: rq->n_messages = f->n; break;
    case C_INPUT: rq->n_inputs = f->n; break;
    case C_TOOLS: rq->has_tools = f->n > 0; break;
    case C_TOOL_CHOICE: {
        const char *t = sc->tc_type;
        const char *v = strcmp(t, "auto") == 0   ? "auto"
                        : strcmp(t, "none") == 0 ? "none"
                        : strcmp(t, "any") == 0  ? "required"
                                                 : "function";
        snprintf(rq->tool_choice, sizeof rq->tool_choice, "%s", v);
        break;
    }
    default: break;
    }
}

/* A string value of role r: decode it into the right sink and record it. */
static int string_value(scan_t *sc, enum role r)
{
    al_chatreq_t *rq = sc->rq;
    uint8_t counter = counter_for(sc, r);
    char tmp[16];
    sink_t k = {0};
    size_t start = sc->i;
    int rc;

    if (counter != K_NONE) k.count = &sc->bytes[counter];
    switch (r) {
    case R_MODEL:
        k.cap = rq->model_name;
        k.capmax = sizeof rq->model_name - 1;
        break;
    case R_CONTENT:
    case R_PART_TEXT:
        if (sc->hash_on) k.hash = &sc->msg_hash;
        break;
    case R_TOOL_NAME:
        k.cap = sc->fn_name;
        k.capmax = sizeof sc->fn_name - 1;
        break;
    case R_TOOL_NAME_PLAIN:
        k.cap = sc->plain_name;
        k.capmax = sizeof sc->plain_name - 1;
        break;
    case R_TC_NAME:
        k.cap = rq->tool_choice_name;
        k.capmax = sizeof rq->tool_choice_name - 1;
        break;
    case R_TOOL_CHOICE_TYPE:
        k.cap = sc->tc_type;
        k.capmax = sizeof sc->tc_type - 1;
        break;
    case R_RF_TYPE:
        k.cap = rq->response_format;
        k.capmax = sizeof rq->response_format - 1;
        break;
    case R_TOOL_CHOICE:
    case R_ENC_FORMAT:
        k.cap = tmp;
        k.capmax = sizeof tmp - 1;
        break;
    case R_USER:
        k.cap = rq->user;
        k.capmax = sizeof rq->user - 1;
        break;
    default: break;
    }
    if (k.cap) k.cap[0] = '\0';
    if ((rc = scan_string(sc, &k)) != AL_OK) return rc;

    switch (r) {
    case R_MODEL:
        rq->model = (al_span_t){(uint32_t)start, (uint32_t)(sc->i - start)};
        rq->model_name_len = k.caplen;
        break;
    case R_INPUT: rq->n_inputs = 1; break;
    case R_TOOL_CHOICE_TYPE:
        if (k.caplen > k.capmax) sc->tc_type[0] = '\0';
        break;
    case R_RF_TYPE:
        if (k.caplen > k.capmax) rq->response_format[0] = '\0';
        break;
    case R_TOOL_CHOICE:
        if (k.caplen <= k.capmax &&
            (strcmp(tmp, "none") == 0 || strcmp(tmp, "auto") == 0 ||
             strcmp(tmp, "required") == 0))
            snprintf(rq->tool_choice, sizeof rq->tool_choice, "%s", tmp);
        break;
    case R_ENC_FORMAT:
        rq->encoding_base64 = k.caplen <= k.capmax && strcmp(tmp, "base64") == 0;
        break;
    case R_USER:
        if (k.caplen > k.capmax) rq->user[0] = '\0'; /* too long to be an id: not kept */
        break;
    default: break;
    }
    return AL_OK;
}

static int number_value(scan_t *sc, enum role r)
{
    size_t start = sc->i;
    bool is_int, neg;
    uint64_t v;
    int rc = scan_number(sc, &is_int, &neg);
    if (rc != AL_OK) return rc;
    if (r != R_MAXC && r != R_MAXT && r != R_DIMENSIONS && r != R_N) return AL_OK;
    bool ok = is_int && !neg &&
              al_parse_u64((const char *)sc->s + start, sc->i - start, &v) == AL_OK &&
              v <= (uint64_t)INT64_MAX;
    if (r == R_DIMENSIONS) {
        sc->rq->dimensions = ok && v <= UINT32_MAX ? (uint32_t)v : 0;
        return AL_OK;
    }
    if (r == R_N) {
        /* Each choice is a completion: budgets must see all of them. */
        if (!ok || v < 1 || v > 128) return type_error(sc, "n must be an integer from 1 to 128");
        sc->rq->n = (uint32_t)v;
        return AL_OK;
    }
    if (!ok)
        return type_error(sc, r == R_MAXC ? "max_completion_tokens must be a non-negative integer"
                                          : "max_tokens must be a non-negative integer");
    if (r == R_MAXC) sc->maxc = (int64_t)v;
    else sc->maxt = (int64_t)v;
    return AL_OK;
}

static int literal_value(scan_t *sc, enum role r)
{
    al_chatreq_t *rq = sc->rq;
    size_t start = sc->i;
    unsigned char c = sc->s[sc->i];
    int rc = c == 't'   ? scan_literal(sc, "true", 4)
             : c == 'f' ? scan_literal(sc, "false", 5)
                        : scan_literal(sc, "null", 4);
    if (rc != AL_OK) return rc;
    al_span_t tok = {(uint32_t)start, (uint32_t)(sc->i - start)};
    switch (r) {
    case R_STREAM: rq->stream = c == 't'; break;
    case R_INCLUDE_USAGE:
        rq->include_usage = tok;
        rq->include_usage_true = c == 't';
        break;
    case R_STREAM_OPTIONS: rq->stream_options_null = tok; break; /* only null passes */
    default: break;
    }
    return AL_OK;
}

/* Push a container frame for role r at the current '{' or '['. */
static int push(scan_t *sc, enum role r, bool obj)
{
    if (sc->depth >= MAX_DEPTH) return fail(sc, "nesting deeper than 64");
    frame_t *f = &sc->st[sc->depth];
    f->obj = obj;
    f->ctx = obj ? ctx_for_object(r) : ctx_for_array(r);
    f->counter = counter_for(sc, r);
    f->n = 0;
    f->start = (uint32_t)sc->i;
    sc->depth++;
    sc->i++;
    return AL_OK;
}

/* Scan one value of role r at sc->i (containers included, iteratively), then
 * require nothing but whitespace up to sc->len. */
static int scan_value(scan_t *sc, enum role r)
{
    const unsigned char *s = sc->s;
    char key[KEY_MAX + 1];
    int rc;

value:
    if (sc->i >= sc->len) return fail(sc, "unexpected end of input");
    {
        unsigned char c = s[sc->i];
        const char *terr = type_check(r, c);
        if (terr && sc->response) {
            r = R_NONE; /* a response's odd usage is unknown usage, not bad JSON */
            terr = NULL;
        }
        if (terr) return type_error(sc, terr);
        switch (c) {
        case '{':
            if ((rc = push(sc, r, true)) != AL_OK) return rc;
            skip_ws(sc);
            if (sc->i < sc->len && s[sc->i] == '}') goto close;
            goto member;
        case '[':
            if ((rc = push(sc, r, false)) != AL_OK) return rc;
            skip_ws(sc);
            if (sc->i < sc->len && s[sc->i] == ']') goto close;
            goto element;
        case '"': rc = string_value(sc, r); break;
        case 't':
        case 'f':
        case 'n': rc = literal_value(sc, r); break;
        default:
            if (c == '-' || (c >= '0' && c <= '9')) rc = number_value(sc, r);
            else rc = fail(sc, "unexpected character");
        }
        if (rc != AL_OK) return rc;
        goto after_value;
    }

member: {
    frame_t *f = &sc->st[sc->depth - 1];
    sink_t k = {.cap = key, .capmax = KEY_MAX};
    if (sc->i >= sc->len) return fail(sc, "unexpected end of input");
    if (s[sc->i] != '"') return fail(sc, "expected a member name");
    key[0] = '\0';
    if ((rc = scan_string(sc, &k)) != AL_OK) return rc;
    skip_ws(sc);
    if (sc->i >= sc->len || s[sc->i] != ':') return fail(sc, "expected ':'");
    sc->i++;
    skip_ws(sc);
    r = key_role(f->ctx, key, k.caplen, k.caplen > KEY_MAX);
    if (sc->response && f->ctx == C_TOP && r != R_USAGE && r != R_CHOICES) r = R_NONE;
    f->n++;
    /* A second "model" or "stream" could make airlock authorize one value
     * while a provider that reads the first acts on another: refuse it. */
    if ((r == R_MODEL && sc->seen_model++) || (r == R_STREAM && sc->seen_stream++))
        return type_error(sc, r == R_MODEL ? "duplicate model member" : "duplicate stream member");
    on_key(sc, r);
    goto value;
}

element: {
    frame_t *f = &sc->st[sc->depth - 1];
    r = element_role(sc, f);
    f->n++;
    goto value;
}

after_value:
    if (sc->depth == 0) {
        skip_ws(sc);
        if (sc->i != sc->len) return fail(sc, "trailing data after the object");
        return AL_OK;
    }
    skip_ws(sc);
    if (sc->i >= sc->len) return fail(sc, "unexpected end of input");
    {
        frame_t *f = &sc->st[sc->depth - 1];
        unsigned char c = s[sc->i];
        if (c == ',') {
            sc->i++;
            skip_ws(sc);
            if (f->obj) goto member;
            goto element;
        }
        if (c == (f->obj ? '}' : ']')) goto close;
        return fail(sc, f->obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }

close:
    on_close(sc, &sc->st[sc->depth - 1]);
    sc->depth--;
    sc->i++;
    goto after_value;
}

/* FNV-1a over the content of the last message, whose element spans sp.  The
 * first pass only notes where the last message is: hashing every message as
 * it went by cost more than the rest of the scan.  The span was validated,
 * so this second scan of it cannot fail. */
static uint32_t hash_message(const scan_t *sc, al_span_t sp)
{
    scan_t sub;
    al_chatreq_t scratch;
    memset(&sub, 0, sizeof sub);
    memset(&scratch, 0, sizeof scratch);
    sub.s = sc->s + sp.off;
    sub.len = sp.len;
    sub.rq = &scratch;
    sub.msg_hash = FNV_OFFSET;
    sub.hash_on = true;
    sub.maxc = sub.maxt = -1;
    if (scan_value(&sub, R_MESSAGE) != AL_OK) return FNV_OFFSET;
    return sub.msg_hash;
}

static int scan_body(scan_t *sc)
{
    skip_ws(sc);
    if (sc->i >= sc->len || sc->s[sc->i] != '{')
        return type_error(sc, "request body must be a JSON object");
    return scan_value(sc, R_TOP);
}

static int parse(const char *body, size_t len, al_chatreq_t *out, char *err, size_t errlen,
                 bool response);

int al_chatreq_parse(const char *body, size_t len, al_chatreq_t *out, char *err, size_t errlen)
{
    return parse(body, len, out, err, errlen, false);
}

int al_chatreq_scan_response(const char *body, size_t len, al_chatreq_t *out)
{
    return parse(body, len, out, NULL, 0, true);
}

static int parse(const char *body, size_t len, al_chatreq_t *out, char *err, size_t errlen,
                 bool response)
{
    scan_t sc;
    int rc;

    memset(out, 0, sizeof *out);
    out->max_tokens = -1;
    out->n_choices = -1;
    out->n = 1;
    out->last_user_hash = FNV_OFFSET;
    if (err && errlen) err[0] = '\0';
    if (len > UINT32_MAX) {
        if (err && errlen) snprintf(err, errlen, "request body too large");
        return AL_ETOOBIG;
    }
    if (!body) len = 0;
    sc.s = (const unsigned char *)(body ? body : "");
    sc.len = len;
    sc.i = 0;
    sc.seen_model = sc.seen_stream = 0;
    sc.response = response;
    sc.rq = out;
    sc.err = err;
    sc.errlen = errlen;
    sc.depth = 0;
    memset(sc.bytes, 0, sizeof sc.bytes);
    sc.maxc = sc.maxt = -1;
    sc.msg_hash = FNV_OFFSET;
    sc.hash_on = false;
    sc.last_msg = (al_span_t){0, 0};
    sc.fn_name[0] = sc.plain_name[0] = sc.tc_type[0] = '\0';

    rc = scan_body(&sc);
    if (rc != AL_OK) {
        /* Leave nothing half-filled behind. */
        memset(out, 0, sizeof *out);
        out->max_tokens = -1;
        out->n = 1;
        out->last_user_hash = FNV_OFFSET;
        return rc;
    }
    if (sc.last_msg.len) out->last_user_hash = hash_message(&sc, sc.last_msg);
    out->max_tokens = sc.maxc >= 0 ? sc.maxc : sc.maxt;
    out->prompt_bytes = sc.bytes[K_MESSAGES] + sc.bytes[K_INPUT] + sc.bytes[K_PROMPT] +
                        sc.bytes[K_SYSTEM];
    if (out->has_tools) {
        const char *name = sc.fn_name[0] ? sc.fn_name : sc.plain_name;
        snprintf(out->tool_name, sizeof out->tool_name, "%s", name);
    }
    return AL_OK;
}

uint64_t al_chatreq_estimate_tokens(const al_chatreq_t *rq)
{
    return rq->prompt_bytes / 4 + (rq->prompt_bytes % 4 != 0);
}

/* --- rewrite ------------------------------------------------------------ */

enum edit_kind { E_LITERAL, E_MODEL, E_MEMBERS };

typedef struct edit {
    size_t off, del;
    enum edit_kind kind;
    const char *lit;
} edit_t;

static bool span_ok(al_span_t sp, size_t len)
{
    return sp.len == 0 || ((size_t)sp.off + sp.len <= len);
}

int al_chatreq_rewrite(const char *body, size_t len, const al_chatreq_t *rq, const char *model,
                       size_t model_len, bool force_usage, al_buf_t *out)
{
    edit_t ed[3];
    size_t ne = 0, close, tail, pos = 0;
    bool nonempty, add_model = false, add_usage = false;

    if (!body || !rq || !out || len > UINT32_MAX) return AL_EINVAL;
    if (!span_ok(rq->model, len) || !span_ok(rq->stream_options, len) ||
        !span_ok(rq->stream_options_null, len) || !span_ok(rq->include_usage, len))
        return AL_EINVAL;
    /* The body was validated by al_chatreq_parse, so the last non-blank
     * byte is the top-level '}', and the non-blank byte before it is '{'
     * exactly when the object is empty. */
    close = len;
    while (close > 0 && is_ws((unsigned char)body[close - 1])) close--;
    if (close == 0 || body[close - 1] != '}') return AL_EINVAL;
    close--;
    tail = close;
    while (tail > 0 && is_ws((unsigned char)body[tail - 1])) tail--;
    if (tail == 0) return AL_EINVAL;
    nonempty = body[tail - 1] != '{';

    if (model) {
        if (rq->model.len) {
            if (body[rq->model.off] != '"') return AL_EINVAL;
            ed[ne++] = (edit_t){rq->model.off, rq->model.len, E_MODEL, NULL};
        } else {
            add_model = true;
        }
    }
    if (force_usage && rq->stream && !rq->include_usage_true) {
        if (rq->include_usage.len) {
            ed[ne++] = (edit_t){rq->include_usage.off, rq->include_usage.len, E_LITERAL, "true"};
        } else if (rq->stream_options.len) {
            size_t o = (size_t)rq->stream_options.off + 1;
            if (body[rq->stream_options.off] != '{') return AL_EINVAL;
            while (o < len && is_ws((unsigned char)body[o])) o++;
            bool empty = o < len && body[o] == '}';
            ed[ne++] = (edit_t){(size_t)rq->stream_options.off + 1, 0, E_LITERAL,
                                empty ? "\"include_usage\":true" : "\"include_usage\":true,"};
        } else if (rq->stream_options_null.len) {
            ed[ne++] = (edit_t){rq->stream_options_null.off, rq->stream_options_null.len,
                                E_LITERAL, "{\"include_usage\":true}"};
        } else {
            add_usage = true;
        }
    }
    if (add_model || add_usage) ed[ne++] = (edit_t){tail, 0, E_MEMBERS, NULL};

    /* At most three edits: insertion sort by offset. */
    for (size_t a = 1; a < ne; a++)
        for (size_t b = a; b > 0 && ed[b].off < ed[b - 1].off; b--) {
            edit_t t = ed[b];
            ed[b] = ed[b - 1];
            ed[b - 1] = t;
        }

    for (size_t j = 0; j < ne; j++) {
        if (ed[j].off < pos || ed[j].off + ed[j].del > len) return AL_EINVAL;
        al_buf_append(out, body + pos, ed[j].off - pos);
        switch (ed[j].kind) {
        case E_LITERAL: al_buf_puts(out, ed[j].lit); break;
        case E_MODEL: al_buf_json_str(out, model, model_len); break;
        case E_MEMBERS:
            if (add_model) {
                al_buf_puts(out, nonempty ? ",\"model\":" : "\"model\":");
                al_buf_json_str(out, model, model_len);
                nonempty = true;
            }
            if (add_usage)
                al_buf_puts(out, nonempty ? ",\"stream_options\":{\"include_usage\":true}"
                                          : "\"stream_options\":{\"include_usage\":true}");
            break;
        }
        pos = ed[j].off + ed[j].del;
    }
    al_buf_append(out, body + pos, len - pos);
    return out->err;
}
