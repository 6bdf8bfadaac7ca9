/* simulated.c - the deterministic simulated model: OpenAI-shaped chat
 * completions, stream chunks, usage chunks and embeddings built from the
 * parsed request alone.
 *
 * al_sim_plan() derives a 32-bit seed from the last message's hash and the
 * model name; word k of the answer is vocab[xorshift32(seed, k) & 63], so any
 * slice of the text can be produced without generating what comes before it
 * (a stream chunk renders only its own words).  The text is the words joined
 * by spaces, capitalised, ending in '.'; in JSON mode it is wrapped as
 * {"answer":"..."}, for a tool call as the arguments {"query":"..."}.  The
 * stream splits that text at word boundaries; the wrapper's opening goes with
 * the first text chunk and its closing with the last, so the deltas always
 * concatenate to exactly the non-streamed string.  Embeddings hash each input
 * (string, or token array as written) with the model into a seed, fill a
 * vector from it and normalise it to unit length. */
#include "upstream/simulated.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define FNV_OFFSET 0x811c9dc5u
#define FNV_PRIME 0x01000193u
#define DEFAULT_WORDS 16
#define DEFAULT_DIMS 8
#define MAX_DIMS 4096
#define FINGERPRINT "fp_airlock_sim"
#define TEXT_MAX ((size_t)64 << 20)

static const char *const vocab[64] = {
    "the",    "a",      "and",    "of",    "to",     "in",    "is",     "it",
    "that",   "for",    "on",     "with",  "as",     "was",   "at",     "by",
    "this",   "from",   "or",     "be",    "are",    "have",  "not",    "but",
    "we",     "you",    "they",   "can",   "will",   "all",   "there",  "one",
    "time",   "people", "year",   "way",   "day",    "thing", "world",  "life",
    "hand",   "part",   "place",  "case",  "point",  "group", "number", "fact",
    "good",   "new",    "first",  "last",  "long",   "great", "little", "own",
    "other",  "old",    "right",  "big",   "high",   "small", "large",  "next",
};

static uint32_t xorshift32(uint32_t x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* A well-mixed, never-zero value for (seed, k). */
static uint32_t mix(uint32_t seed, uint32_t k)
{
    uint32_t x = seed ^ ((k + 1) * 0x9E3779B9u);
    if (x == 0) x = 0x6D2B79F5u;
    return xorshift32(xorshift32(xorshift32(x)));
}

static uint32_t fnv_more(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

void al_sim_plan(const al_chatreq_t *rq, const al_sim_params_t *p, al_sim_reply_t *out)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t seed, a, b, c;

    memset(out, 0, sizeof *out);
    seed = fnv_more(rq->last_user_hash, rq->model_name, strlen(rq->model_name));
    if (seed == 0) seed = 0x9E3779B9u;
    out->seed = seed;
    out->output_tokens = p ? p->output_tokens : DEFAULT_WORDS;
    if (rq->max_tokens >= 0 && (uint64_t)rq->max_tokens < out->output_tokens) {
        out->output_tokens = (uint32_t)rq->max_tokens;
        out->length_limited = true;
    }
    out->tool_call = rq->has_tools && strcmp(rq->tool_choice, "none") != 0;
    if (out->tool_call) {
        const char *name = rq->tool_choice_name[0] ? rq->tool_choice_name : rq->tool_name;
        snprintf(out->tool_name, sizeof out->tool_name, "%s", name[0] ? name : "tool");
    }
    out->json = strcmp(rq->response_format, "json_object") == 0 ||
                strcmp(rq->response_format, "json_schema") == 0;
    out->prompt_tokens = (int64_t)al_chatreq_estimate_tokens(rq);
    if (out->prompt_tokens < 1) out->prompt_tokens = 1;

    a = mix(seed, 0xFFFFFFF0u);
    b = mix(seed, 0xFFFFFFF1u);
    c = mix(seed, 0xFFFFFFF2u);
    memcpy(out->id, "chatcmpl-sim-", 13);
    for (int i = 0; i < 8; i++) {
        out->id[13 + i] = hex[(a >> (28 - 4 * i)) & 15];
        out->id[21 + i] = hex[(b >> (28 - 4 * i)) & 15];
    }
    out->id[29] = '\0';
    memcpy(out->call_id, "call_sim_", 9);
    for (int i = 0; i < 8; i++) out->call_id[9 + i] = hex[(c >> (28 - 4 * i)) & 15];
    out->call_id[17] = '\0';
    out->created = al_wall_ms() / 1000;
}

/* --- text --------------------------------------------------------------- */

static const char *wrap_open(const al_sim_reply_t *r)
{
    return r->tool_call ? "{\"query\":\"" : r->json ? "{\"answer\":\"" : "";
}

static const char *wrap_close(const al_sim_reply_t *r)
{
    return r->tool_call || r->json ? "\"}" : "";
}

/* Append words [from, to) of the W-word text. */
static void put_words(al_buf_t *b, const al_sim_reply_t *r, uint32_t from, uint32_t to)
{
    uint32_t w = r->output_tokens;
    for (uint32_t k = from; k < to && k < w; k++) {
        const char *word = vocab[mix(r->seed, k) & 63];
        if (k > 0) al_buf_putc(b, ' ');
        if (k == 0) {
            char first = (char)(word[0] - 'a' + 'A');
            al_buf_putc(b, first);
            al_buf_puts(b, word + 1);
        } else {
            al_buf_puts(b, word);
        }
        if (k + 1 == w) al_buf_putc(b, '.');
    }
}

/* The whole text (content, or tool-call arguments) into b. */
static void put_text(al_buf_t *b, const al_sim_reply_t *r)
{
    al_buf_puts(b, wrap_open(r));
    put_words(b, r, 0, r->output_tokens);
    al_buf_puts(b, wrap_close(r));
}

/* Piece j of m of the text. */
static void put_piece(al_buf_t *b, const al_sim_reply_t *r, unsigned j, unsigned m)
{
    uint64_t w = r->output_tokens;
    if (j == 0) al_buf_puts(b, wrap_open(r));
    put_words(b, r, (uint32_t)(j * w / m), (uint32_t)((j + 1) * w / m));
    if (j + 1 == m) al_buf_puts(b, wrap_close(r));
}

static const char *finish_reason(const al_sim_reply_t *r)
{
    return r->tool_call ? "tool_calls" : r->length_limited ? "length" : "stop";
}

static void put_head(al_buf_t *out, const al_sim_reply_t *r, const char *object, const char *model)
{
    al_buf_printf(out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", r->id,
                  object, (long long)r->created);
    al_buf_json_str(out, model ? model : "", model ? strlen(model) : 0);
}

static void put_usage(al_buf_t *out, const al_sim_reply_t *r)
{
    al_buf_printf(out,
                  "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%u,"
                  "\"total_tokens\":%lld,\"prompt_tokens_details\":{\"cached_tokens\":0},"
                  "\"completion_tokens_details\":{\"reasoning_tokens\":0}}",
                  (long long)r->prompt_tokens, r->output_tokens,
                  (long long)r->prompt_tokens + r->output_tokens);
}

int al_sim_chat_json(const al_sim_reply_t *r, const char *model, bool include_usage, al_buf_t *out)
{
    al_buf_t text;
    int rc;

    al_buf_init(&text, TEXT_MAX);
    put_text(&text, r);
    if ((rc = text.err) != AL_OK) goto out;

    put_head(out, r, "chat.completion", model);
    al_buf_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (r->tool_call) {
        al_buf_printf(out, "null,\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\","
                           "\"function\":{\"name\":", r->call_id);
        al_buf_json_str(out, r->tool_name, strlen(r->tool_name));
        al_buf_puts(out, ",\"arguments\":");
        al_buf_json_str(out, text.p ? text.p : "", text.len);
        al_buf_puts(out, "}}]");
    } else {
        al_buf_json_str(out, text.p ? text.p : "", text.len);
    }
    al_buf_printf(out, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                  finish_reason(r));
    if (include_usage) {
        al_buf_putc(out, ',');
        put_usage(out, r);
    }
    al_buf_puts(out, ",\"system_fingerprint\":\"" FINGERPRINT "\"}");
    rc = out->err;
out:
    al_buf_free(&text);
    return rc;
}

int al_sim_chat_chunk_json(const al_sim_reply_t *r, const char *model, unsigned i, unsigned n,
                           al_buf_t *out)
{
    al_buf_t piece;
    int rc;

    if (n == 0 || i >= n) return AL_EINVAL;
    al_buf_init(&piece, TEXT_MAX);
    /* With n >= 2, chunk 0 is the role only and chunks 1..n-1 carry text. */
    if (n == 1) put_piece(&piece, r, 0, 1);
    else if (i > 0) put_piece(&piece, r, i - 1, n - 1);
    if ((rc = piece.err) != AL_OK) goto out;

    put_head(out, r, "chat.completion.chunk", model);
    al_buf_puts(out, ",\"system_fingerprint\":\"" FINGERPRINT "\",\"choices\":[{\"index\":0,\"delta\":{");
    if (r->tool_call) {
        if (i == 0) {
            al_buf_printf(out, "\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
                               "\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":",
                          r->call_id);
            al_buf_json_str(out, r->tool_name, strlen(r->tool_name));
            al_buf_puts(out, ",\"arguments\":");
            al_buf_json_str(out, piece.p ? piece.p : "", piece.len);
            al_buf_puts(out, "}}],\"refusal\":null");
        } else {
            al_buf_puts(out, "\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
            al_buf_json_str(out, piece.p ? piece.p : "", piece.len);
            al_buf_puts(out, "}}]");
        }
    } else {
        if (i == 0) al_buf_puts(out, "\"role\":\"assistant\",");
        al_buf_puts(out, "\"content\":");
        al_buf_json_str(out, piece.p ? piece.p : "", piece.len);
        if (i == 0) al_buf_puts(out, ",\"refusal\":null");
    }
    al_buf_puts(out, "},\"logprobs\":null,\"finish_reason\":");
    if (i + 1 == n) al_buf_printf(out, "\"%s\"}]}", finish_reason(r));
    else al_buf_puts(out, "null}]}");
    rc = out->err;
out:
    al_buf_free(&piece);
    return rc;
}

int al_sim_usage_chunk_json(const al_sim_reply_t *r, const char *model, al_buf_t *out)
{
    put_head(out, r, "chat.completion.chunk", model);
    al_buf_puts(out, ",\"system_fingerprint\":\"" FINGERPRINT "\",\"choices\":[],");
    put_usage(out, r);
    al_buf_putc(out, '}');
    return out->err;
}

/* --- embeddings --------------------------------------------------------- */

static void put_base64(al_buf_t *b, const unsigned char *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        q[0] = tbl[v >> 18];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = tbl[(v >> 6) & 63];
        q[3] = tbl[v & 63];
        al_buf_append(b, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        q[0] = tbl[v >> 18];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = q[3] = '=';
        al_buf_append(b, q, 4);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        q[0] = tbl[v >> 18];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = tbl[(v >> 6) & 63];
        q[3] = '=';
        al_buf_append(b, q, 4);
    }
}

/* The hash of one input value: a string's bytes, or the numbers of a token
 * array as written, separated by commas. */
static uint32_t input_hash(yajl_val v, uint32_t idx)
{
    uint32_t h = FNV_OFFSET;
    if (YAJL_IS_STRING(v)) return fnv_more(h, v->u.string, strlen(v->u.string));
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i];
            if (YAJL_IS_NUMBER(e) && e->u.number.r)
                h = fnv_more(h, e->u.number.r, strlen(e->u.number.r));
            h = fnv_more(h, ",", 1);
        }
        return h;
    }
    return fnv_more(h, &idx, sizeof idx);
}

/* The request's "input" as a tree (caller frees *tree), or NULL. */
static yajl_val find_input(const char *body, size_t len, yajl_val *tree)
{
    char ebuf[64];
    char *copy;
    yajl_val in = NULL;

    *tree = NULL;
    if (!body || len == 0 || memchr(body, '\0', len)) return NULL;
    copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, body, len);
    copy[len] = '\0';
    *tree = yajl_tree_parse(copy, ebuf, sizeof ebuf);
    free(copy);
    if (YAJL_IS_OBJECT(*tree))
        for (size_t i = 0; i < (*tree)->u.object.len; i++)
            if (strcmp((*tree)->u.object.keys[i], "input") == 0) in = (*tree)->u.object.values[i];
    return in;
}

static void put_vector(al_buf_t *out, uint32_t seed, unsigned dims, bool b64, float *v)
{
    double sum = 0;
    for (unsigned j = 0; j < dims; j++) {
        double x = (double)(mix(seed, j) >> 8) / (double)(1u << 24) * 2.0 - 1.0;
        v[j] = (float)x;
        sum += x * x;
    }
    double norm = sqrt(sum);
    for (unsigned j = 0; j < dims; j++) v[j] = norm > 0 ? (float)(v[j] / norm) : j == 0 ? 1.0f : 0.0f;
    if (b64) {
        /* little-endian float32, whatever the host */
        unsigned char *bytes = al_malloc((size_t)dims * 4);
        for (unsigned j = 0; j < dims; j++) {
            uint32_t u;
            memcpy(&u, &v[j], 4);
            bytes[4 * j] = (unsigned char)u;
            bytes[4 * j + 1] = (unsigned char)(u >> 8);
            bytes[4 * j + 2] = (unsigned char)(u >> 16);
            bytes[4 * j + 3] = (unsigned char)(u >> 24);
        }
        al_buf_putc(out, '"');
        put_base64(out, bytes, (size_t)dims * 4);
        al_buf_putc(out, '"');
        free(bytes);
        return;
    }
    al_buf_putc(out, '[');
    for (unsigned j = 0; j < dims; j++) al_buf_printf(out, j ? ",%.9g" : "%.9g", (double)v[j]);
    al_buf_putc(out, ']');
}

int al_sim_embeddings_json(const al_chatreq_t *rq, const char *body, size_t len, const char *model,
                           unsigned dims, al_buf_t *out)
{
    yajl_val tree, input;
    uint32_t n, model_seed;
    float *vec;
    int64_t tokens;

    if (!dims) dims = rq->dimensions ? rq->dimensions : DEFAULT_DIMS;
    if (dims > MAX_DIMS) dims = MAX_DIMS;
    if (!model) model = "";
    model_seed = fnv_more(FNV_OFFSET, model, strlen(model));
    input = find_input(body, len, &tree);
    n = YAJL_IS_ARRAY(input) ? (uint32_t)input->u.array.len : YAJL_IS_STRING(input) ? 1 : rq->n_inputs;
    vec = al_malloc((size_t)dims * sizeof *vec);

    al_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (uint32_t i = 0; i < n && out->err == AL_OK; i++) {
        yajl_val item = YAJL_IS_ARRAY(input) ? input->u.array.values[i] : input;
        uint32_t h = item ? input_hash(item, i) : fnv_more(FNV_OFFSET, &i, sizeof i);
        uint32_t seed = (h ^ model_seed) ? (h ^ model_seed) : 1;
        al_buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%u,\"embedding\":", i ? "," : "", i);
        put_vector(out, seed, dims, rq->encoding_base64, vec);
        al_buf_putc(out, '}');
    }
    free(vec);
    if (tree) yajl_tree_free(tree);

    tokens = (int64_t)al_chatreq_estimate_tokens(rq);
    if (tokens < 1) tokens = 1;
    al_buf_puts(out, "],\"model\":");
    al_buf_json_str(out, model, strlen(model));
    al_buf_printf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
                  (long long)tokens, (long long)tokens);
    return out->err;
}
