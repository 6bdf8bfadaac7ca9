/* messages.c - inbound Anthropic Messages API translated to and from the
 * OpenAI chat-completions shape the rest of airlock speaks.
 *
 * Every input (the client's request, the completion, each streamed chunk, an
 * error body) is hostile.  It is first pre-scanned without allocation: at most
 * 64 MiB, no NUL byte, nothing but JSON outside strings ('/' would start a
 * YAJL comment), nesting at most 64 deep - so that YAJL's tree and the
 * recursive walks here stay bounded.  It is then parsed with YAJL's tree API
 * (strings UTF-8 validated, numbers kept as their raw text) from a
 * NUL-terminated copy, read with type checks, and the answer is written with
 * the capped al_buf_t builder (al_buf_json_str for every string), so output is
 * always valid JSON whatever came in.  Member lookups take the LAST duplicate,
 * as JSON.parse does.  Requests are validated field by field and refused with
 * a Messages-style reason ("messages.1.content.0.type: unknown block type")
 * that names the field, never its content.  The stream translator keeps a
 * small state (message started, open block and its kind, the OpenAI tool
 * index of the last tool_use block, the stop reason, usage) and turns each
 * chat.completion.chunk into the Messages SSE events; tool-call argument
 * fragments pass through unbuffered as input_json_delta partials. */
#include "translate/messages.h"
#include "util/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define MSGS_MAX_INPUT ((size_t)64 << 20)
#define MSGS_MAX_DEPTH 64
/* Scratch buffers (tool arguments, tool results, SSE events): far above any
 * real value, bounded so a hostile one fails cleanly. */
#define MSGS_SCRATCH_MAX ((size_t)400 << 20)

/* ---- small helpers ---------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Cheap structural pre-check before YAJL sees the text: bounded size and
 * depth, no NUL (the copy handed to YAJL is NUL-terminated), no comments
 * (YAJL's tree parser accepts them; JSON does not). */
static int prescan(const char *p, size_t n, char *err, size_t errlen)
{
    int depth = 0;
    bool str = false;
    if (n > MSGS_MAX_INPUT) {
        set_err(err, errlen, "body: request too large");
        return AL_ETOOBIG;
    }
    if (n && memchr(p, '\0', n) != NULL) {
        set_err(err, errlen, "body: invalid JSON");
        return AL_EPARSE;
    }
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (str) {
            if (c == '\\') i++;
            else if (c == '"') str = false;
        } else if (c == '"') {
            str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > MSGS_MAX_DEPTH) {
                set_err(err, errlen, "body: JSON nested too deeply");
                return AL_EPARSE;
            }
        } else if (c == '}' || c == ']') {
            if (--depth < 0) {   /* unbalanced: would let later opens exceed the bound */
                set_err(err, errlen, "body: invalid JSON");
                return AL_EPARSE;
            }
        } else if (c == '/') {
            set_err(err, errlen, "body: invalid JSON");
            return AL_EPARSE;
        }
    }
    return 0;
}

/* Parse p/n into a tree (caller frees with yajl_tree_free).  0, AL_EPARSE,
 * AL_ETOOBIG. */
static int parse_tree(const char *p, size_t n, yajl_val *out, char *err, size_t errlen)
{
    char yerr[128];
    char *z;
    int rc;

    *out = NULL;
    if (!p && n) return AL_EINVAL;
    rc = prescan(p, n, err, errlen);
    if (rc != 0) return rc;
    z = al_malloc(n + 1);
    if (n) memcpy(z, p, n);
    z[n] = '\0';
    *out = yajl_tree_parse(z, yerr, sizeof yerr);
    free(z);
    if (!*out) {
        set_err(err, errlen, "body: invalid JSON");
        return AL_EPARSE;
    }
    return 0;
}

/* Absent or JSON null. */
static bool nullish(yajl_val v)
{
    return v == NULL || YAJL_IS_NULL(v);
}

static void put_str(al_buf_t *b, const char *s)
{
    al_buf_json_str(b, s, s ? strlen(s) : 0);
}

/* "prefix" + 24 random hex characters. */
static void random_id(char *out, size_t outlen, const char *prefix)
{
    uint8_t r[12];
    char hex[25];
    al_fast_random(r, sizeof r);
    al_hex(r, sizeof r, hex);
    snprintf(out, outlen, "%s%s", prefix, hex);
}

/* "msg_" + the completion id without its "chatcmpl-" prefix (truncated to
 * fit), or a random one when the id is missing or empty. */
static void msg_id(yajl_val id, char *out, size_t outlen)
{
    const char *s = YAJL_IS_STRING(id) ? id->u.string : NULL;
    if (s && strncmp(s, "chatcmpl-", 9) == 0) s += 9;
    if (!s || !*s) {
        random_id(out, outlen, "msg_");
        return;
    }
    snprintf(out, outlen, "msg_%s", s);
}

static const char *map_finish(const char *fr)
{
    if (!fr) return "end_turn";
    if (strcmp(fr, "length") == 0) return "max_tokens";
    if (strcmp(fr, "tool_calls") == 0 || strcmp(fr, "function_call") == 0) return "tool_use";
    if (strcmp(fr, "content_filter") == 0) return "refusal";
    return "end_turn";
}

static bool get_count(yajl_val v, int64_t *out)
{
    if (!YAJL_IS_INTEGER(v) || v->u.number.i < 0) return false;
    *out = v->u.number.i;
    return true;
}

/* OpenAI usage object -> u (known only when both counters are valid). */
static void tree_usage(yajl_val uo, al_usage_t *u)
{
    int64_t in, outp, cached = 0;
    if (!YAJL_IS_OBJECT(uo)) return;
    if (!get_count(al_json_get(uo, "prompt_tokens"), &in) ||
        !get_count(al_json_get(uo, "completion_tokens"), &outp))
        return;
    (void)get_count(al_json_get(al_json_get(uo, "prompt_tokens_details"), "cached_tokens"), &cached);
    if (cached > in) cached = in;
    u->known = true;
    u->input = in;
    u->output = outp;
    u->cached = cached;
}

/* ---- request ------------------------------------------------------------ */

typedef struct req_ctx {
    al_buf_t *out;
    char *err;
    size_t errlen;
    size_t n_out;        /* OpenAI messages written (for commas) */
} req_ctx_t;

static void next_msg(req_ctx_t *c)
{
    if (c->n_out++) al_buf_putc(c->out, ',');
}

/* Text of a "text" block; NULL with err set when it is not one. */
static const char *block_text(req_ctx_t *c, yajl_val blk, const char *path)
{
    yajl_val t = al_json_get(blk, "text");
    if (!t) {
        set_err(c->err, c->errlen, "%s.text: Field required", path);
        return NULL;
    }
    if (!YAJL_IS_STRING(t)) {
        set_err(c->err, c->errlen, "%s.text: Input should be a valid string", path);
        return NULL;
    }
    return t->u.string;
}

/* The block's "type" string; NULL with err set when absent or not a string. */
static const char *block_type(req_ctx_t *c, yajl_val blk, const char *path)
{
    yajl_val t;
    if (!YAJL_IS_OBJECT(blk)) {
        set_err(c->err, c->errlen, "%s: Input should be a valid dictionary", path);
        return NULL;
    }
    t = al_json_get(blk, "type");
    if (!t) {
        set_err(c->err, c->errlen, "%s.type: Field required", path);
        return NULL;
    }
    if (!YAJL_IS_STRING(t)) {
        set_err(c->err, c->errlen, "%s.type: Input should be a valid string", path);
        return NULL;
    }
    return t->u.string;
}

static bool is_b64(const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || ch == '='))
            return false;
    }
    return true;
}

/* Validate an image block; when out is non-NULL write its image_url part. */
static int put_image(req_ctx_t *c, yajl_val blk, const char *path, al_buf_t *out)
{
    static const char *const media[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    yajl_val src = al_json_get(blk, "source"), st, mt, data, url;
    bool ok = false;

    if (!src) {
        set_err(c->err, c->errlen, "%s.source: Field required", path);
        return AL_EPARSE;
    }
    if (!YAJL_IS_OBJECT(src)) {
        set_err(c->err, c->errlen, "%s.source: Input should be a valid dictionary", path);
        return AL_EPARSE;
    }
    st = al_json_get(src, "type");
    if (!YAJL_IS_STRING(st)) {
        set_err(c->err, c->errlen, "%s.source.type: Field required", path);
        return AL_EPARSE;
    }
    if (strcmp(st->u.string, "base64") == 0) {
        mt = al_json_get(src, "media_type");
        data = al_json_get(src, "data");
        if (!YAJL_IS_STRING(mt)) {
            set_err(c->err, c->errlen, "%s.source.media_type: Field required", path);
            return AL_EPARSE;
        }
        for (size_t i = 0; i < AL_ARRAY_LEN(media); i++)
            if (strcmp(mt->u.string, media[i]) == 0) ok = true;
        if (!ok) {
            set_err(c->err, c->errlen,
                    "%s.source.media_type: Input should be 'image/jpeg', 'image/png', "
                    "'image/gif' or 'image/webp'", path);
            return AL_EPARSE;
        }
        if (!YAJL_IS_STRING(data)) {
            set_err(c->err, c->errlen, "%s.source.data: Field required", path);
            return AL_EPARSE;
        }
        if (!is_b64(data->u.string)) {
            set_err(c->err, c->errlen, "%s.source.data: invalid base64 data", path);
            return AL_EPARSE;
        }
        if (out) {
            /* media type from the fixed list and base64 need no escaping */
            al_buf_printf(out, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:%s;base64,",
                          mt->u.string);
            al_buf_puts(out, data->u.string);
            al_buf_puts(out, "\"}}");
        }
        return 0;
    }
    if (strcmp(st->u.string, "url") == 0) {
        url = al_json_get(src, "url");
        if (!YAJL_IS_STRING(url)) {
            set_err(c->err, c->errlen, "%s.source.url: Field required", path);
            return AL_EPARSE;
        }
        if (out) {
            al_buf_puts(out, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
            put_str(out, url->u.string);
            al_buf_puts(out, "}}");
        }
        return 0;
    }
    set_err(c->err, c->errlen, "%s.source.type: unsupported image source type", path);
    return AL_EPARSE;
}

/* A tool_result block -> one role "tool" message. */
static int put_tool_result(req_ctx_t *c, yajl_val blk, const char *path)
{
    yajl_val id = al_json_get(blk, "tool_use_id"), ct = al_json_get(blk, "content"), ie = al_json_get(blk, "is_error");
    al_buf_t text;
    char sub[192];
    int rc = 0;

    if (!id) {
        set_err(c->err, c->errlen, "%s.tool_use_id: Field required", path);
        return AL_EPARSE;
    }
    if (!YAJL_IS_STRING(id)) {
        set_err(c->err, c->errlen, "%s.tool_use_id: Input should be a valid string", path);
        return AL_EPARSE;
    }
    if (!nullish(ie) && !YAJL_IS_TRUE(ie) && !YAJL_IS_FALSE(ie)) {
        set_err(c->err, c->errlen, "%s.is_error: Input should be a valid boolean", path);
        return AL_EPARSE;
    }
    al_buf_init(&text, MSGS_SCRATCH_MAX);
    if (YAJL_IS_TRUE(ie)) al_buf_puts(&text, "Error: ");
    if (YAJL_IS_STRING(ct)) {
        al_buf_puts(&text, ct->u.string);
    } else if (YAJL_IS_ARRAY(ct)) {
        for (size_t k = 0; k < ct->u.array.len; k++) {
            yajl_val sb = ct->u.array.values[k];
            const char *ty, *s;
            snprintf(sub, sizeof sub, "%s.content.%zu", path, k);
            ty = block_type(c, sb, sub);
            if (!ty) {
                rc = AL_EPARSE;
                goto out;
            }
            if (strcmp(ty, "text") != 0) {
                set_err(c->err, c->errlen, "%s.type: only text blocks are supported in tool_result",
                        sub);
                rc = AL_EPARSE;
                goto out;
            }
            s = block_text(c, sb, sub);
            if (!s) {
                rc = AL_EPARSE;
                goto out;
            }
            if (k) al_buf_putc(&text, '\n');
            al_buf_puts(&text, s);
        }
    } else if (!nullish(ct)) {
        set_err(c->err, c->errlen, "%s.content: Input should be a valid string or list", path);
        rc = AL_EPARSE;
        goto out;
    }
    if (text.err) {
        rc = text.err;
        goto out;
    }
    next_msg(c);
    al_buf_puts(c->out, "{\"role\":\"tool\",\"tool_call_id\":");
    put_str(c->out, id->u.string);
    al_buf_puts(c->out, ",\"content\":");
    al_buf_json_str(c->out, text.p, text.len);
    al_buf_putc(c->out, '}');
out:
    al_buf_free(&text);
    return rc;
}

static int put_user(req_ctx_t *c, yajl_val ct, size_t mi)
{
    char path[160];
    size_t n_text = 0, n_img = 0, n_part = 0;
    const char *only = NULL;
    int rc;

    if (YAJL_IS_STRING(ct)) {
        next_msg(c);
        al_buf_puts(c->out, "{\"role\":\"user\",\"content\":");
        put_str(c->out, ct->u.string);
        al_buf_putc(c->out, '}');
        return 0;
    }
    /* pass 1: validate, tool results first (OpenAI wants them right after
     * the assistant's tool_calls) */
    for (size_t j = 0; j < ct->u.array.len; j++) {
        yajl_val blk = ct->u.array.values[j];
        const char *ty;
        snprintf(path, sizeof path, "messages.%zu.content.%zu", mi, j);
        ty = block_type(c, blk, path);
        if (!ty) return AL_EPARSE;
        if (strcmp(ty, "text") == 0) {
            only = block_text(c, blk, path);
            if (!only) return AL_EPARSE;
            n_text++;
        } else if (strcmp(ty, "image") == 0) {
            rc = put_image(c, blk, path, NULL);
            if (rc) return rc;
            n_img++;
        } else if (strcmp(ty, "tool_result") == 0) {
            rc = put_tool_result(c, blk, path);
            if (rc) return rc;
        } else if (strcmp(ty, "tool_use") == 0) {
            set_err(c->err, c->errlen, "%s.type: tool_use blocks are only allowed in assistant messages",
                    path);
            return AL_EPARSE;
        } else if (strcmp(ty, "thinking") == 0 || strcmp(ty, "redacted_thinking") == 0) {
            set_err(c->err, c->errlen, "%s.type: thinking blocks are only allowed in assistant messages",
                    path);
            return AL_EPARSE;
        } else if (strcmp(ty, "document") == 0) {
            set_err(c->err, c->errlen, "%s.type: document blocks are not supported", path);
            return AL_EPARSE;
        } else {
            set_err(c->err, c->errlen, "%s.type: unknown block type", path);
            return AL_EPARSE;
        }
    }
    if (n_text + n_img == 0) {
        if (ct->u.array.len) return 0;   /* tool results only */
        next_msg(c);
        al_buf_puts(c->out, "{\"role\":\"user\",\"content\":\"\"}");
        return 0;
    }
    next_msg(c);
    al_buf_puts(c->out, "{\"role\":\"user\",\"content\":");
    if (n_text == 1 && n_img == 0) {
        put_str(c->out, only);
        al_buf_putc(c->out, '}');
        return 0;
    }
    /* pass 2: the remaining parts, in order */
    al_buf_putc(c->out, '[');
    for (size_t j = 0; j < ct->u.array.len; j++) {
        yajl_val blk = ct->u.array.values[j];
        const char *ty = al_json_get(blk, "type")->u.string;
        if (strcmp(ty, "text") == 0) {
            if (n_part++) al_buf_putc(c->out, ',');
            al_buf_puts(c->out, "{\"type\":\"text\",\"text\":");
            put_str(c->out, al_json_get(blk, "text")->u.string);
            al_buf_putc(c->out, '}');
        } else if (strcmp(ty, "image") == 0) {
            if (n_part++) al_buf_putc(c->out, ',');
            snprintf(path, sizeof path, "messages.%zu.content.%zu", mi, j);
            rc = put_image(c, blk, path, c->out);
            if (rc) return rc;
        }
    }
    al_buf_puts(c->out, "]}");
    return 0;
}

/* Validate a tool_use block; when out is non-NULL write its tool call. */
static int put_tool_use(req_ctx_t *c, yajl_val blk, const char *path, al_buf_t *out)
{
    yajl_val id = al_json_get(blk, "id"), name = al_json_get(blk, "name"), in = al_json_get(blk, "input");
    al_buf_t args;
    int rc;

    if (!YAJL_IS_STRING(id)) {
        set_err(c->err, c->errlen, id ? "%s.id: Input should be a valid string" : "%s.id: Field required",
                path);
        return AL_EPARSE;
    }
    if (!YAJL_IS_STRING(name)) {
        set_err(c->err, c->errlen,
                name ? "%s.name: Input should be a valid string" : "%s.name: Field required", path);
        return AL_EPARSE;
    }
    if (!nullish(in) && !YAJL_IS_OBJECT(in)) {
        set_err(c->err, c->errlen, "%s.input: Input should be a valid dictionary", path);
        return AL_EPARSE;
    }
    if (!out) return 0;
    al_buf_init(&args, MSGS_SCRATCH_MAX);
    if (YAJL_IS_OBJECT(in)) al_json_put(&args, in);
    else al_buf_puts(&args, "{}");
    rc = args.err;
    if (rc == 0) {
        al_buf_puts(out, "{\"id\":");
        put_str(out, id->u.string);
        al_buf_puts(out, ",\"type\":\"function\",\"function\":{\"name\":");
        put_str(out, name->u.string);
        al_buf_puts(out, ",\"arguments\":");
        al_buf_json_str(out, args.p, args.len);
        al_buf_puts(out, "}}");
    }
    al_buf_free(&args);
    return rc;
}

static int put_assistant(req_ctx_t *c, yajl_val ct, size_t mi)
{
    char path[160];
    size_t n_text = 0, n_tools = 0;
    al_buf_t text;
    int rc = 0;

    if (YAJL_IS_STRING(ct)) {
        next_msg(c);
        al_buf_puts(c->out, "{\"role\":\"assistant\",\"content\":");
        put_str(c->out, ct->u.string);
        al_buf_putc(c->out, '}');
        return 0;
    }
    al_buf_init(&text, MSGS_SCRATCH_MAX);
    for (size_t j = 0; j < ct->u.array.len; j++) {
        yajl_val blk = ct->u.array.values[j];
        const char *ty, *s;
        snprintf(path, sizeof path, "messages.%zu.content.%zu", mi, j);
        ty = block_type(c, blk, path);
        if (!ty) {
            rc = AL_EPARSE;
            goto out;
        }
        if (strcmp(ty, "text") == 0) {
            s = block_text(c, blk, path);
            if (!s) {
                rc = AL_EPARSE;
                goto out;
            }
            al_buf_puts(&text, s);
            n_text++;
        } else if (strcmp(ty, "tool_use") == 0) {
            rc = put_tool_use(c, blk, path, NULL);
            if (rc) goto out;
            n_tools++;
        } else if (strcmp(ty, "thinking") == 0 || strcmp(ty, "redacted_thinking") == 0) {
            continue;   /* dropped: no OpenAI equivalent */
        } else if (strcmp(ty, "tool_result") == 0 || strcmp(ty, "image") == 0 ||
                   strcmp(ty, "document") == 0) {
            set_err(c->err, c->errlen, "%s.type: %s blocks are only allowed in user messages", path,
                    ty);   /* one of three known names, not client text */
            rc = AL_EPARSE;
            goto out;
        } else {
            set_err(c->err, c->errlen, "%s.type: unknown block type", path);
            rc = AL_EPARSE;
            goto out;
        }
    }
    if (text.err) {
        rc = text.err;
        goto out;
    }
    next_msg(c);
    al_buf_puts(c->out, "{\"role\":\"assistant\",\"content\":");
    if (n_text || !n_tools) al_buf_json_str(c->out, text.p, text.len);
    else al_buf_puts(c->out, "null");
    if (n_tools) {
        size_t k = 0;
        al_buf_puts(c->out, ",\"tool_calls\":[");
        for (size_t j = 0; j < ct->u.array.len; j++) {
            yajl_val blk = ct->u.array.values[j];
            if (strcmp(al_json_get(blk, "type")->u.string, "tool_use") != 0) continue;
            if (k++) al_buf_putc(c->out, ',');
            snprintf(path, sizeof path, "messages.%zu.content.%zu", mi, j);
            rc = put_tool_use(c, blk, path, c->out);
            if (rc) goto out;
        }
        al_buf_putc(c->out, ']');
    }
    al_buf_putc(c->out, '}');
out:
    al_buf_free(&text);
    return rc;
}

static int put_system(req_ctx_t *c, yajl_val sys)
{
    char path[64];
    al_buf_t text;
    int rc = 0;

    if (nullish(sys)) return 0;
    if (YAJL_IS_STRING(sys)) {
        if (!sys->u.string[0]) return 0;
        next_msg(c);
        al_buf_puts(c->out, "{\"role\":\"system\",\"content\":");
        put_str(c->out, sys->u.string);
        al_buf_putc(c->out, '}');
        return 0;
    }
    if (!YAJL_IS_ARRAY(sys)) {
        set_err(c->err, c->errlen, "system: Input should be a valid string or list");
        return AL_EPARSE;
    }
    al_buf_init(&text, MSGS_SCRATCH_MAX);
    for (size_t j = 0; j < sys->u.array.len; j++) {
        yajl_val blk = sys->u.array.values[j];
        const char *ty, *s;
        snprintf(path, sizeof path, "system.%zu", j);
        ty = block_type(c, blk, path);
        if (!ty) {
            rc = AL_EPARSE;
            goto out;
        }
        if (strcmp(ty, "text") != 0) {
            set_err(c->err, c->errlen, "%s.type: Input should be 'text'", path);
            rc = AL_EPARSE;
            goto out;
        }
        s = block_text(c, blk, path);
        if (!s) {
            rc = AL_EPARSE;
            goto out;
        }
        if (j) al_buf_putc(&text, '\n');
        al_buf_puts(&text, s);
    }
    rc = text.err;
    if (rc == 0 && text.len) {
        next_msg(c);
        al_buf_puts(c->out, "{\"role\":\"system\",\"content\":");
        al_buf_json_str(c->out, text.p, text.len);
        al_buf_putc(c->out, '}');
    }
out:
    al_buf_free(&text);
    return rc;
}

static int put_messages(req_ctx_t *c, yajl_val msgs)
{
    char path[64];
    int rc;

    for (size_t i = 0; i < msgs->u.array.len; i++) {
        yajl_val m = msgs->u.array.values[i], role, ct;
        snprintf(path, sizeof path, "messages.%zu", i);
        if (!YAJL_IS_OBJECT(m)) {
            set_err(c->err, c->errlen, "%s: Input should be a valid dictionary", path);
            return AL_EPARSE;
        }
        role = al_json_get(m, "role");
        ct = al_json_get(m, "content");
        if (!role) {
            set_err(c->err, c->errlen, "%s.role: Field required", path);
            return AL_EPARSE;
        }
        if (!YAJL_IS_STRING(role) ||
            (strcmp(role->u.string, "user") != 0 && strcmp(role->u.string, "assistant") != 0)) {
            set_err(c->err, c->errlen, "%s.role: Input should be 'user' or 'assistant'", path);
            return AL_EPARSE;
        }
        if (!ct) {
            set_err(c->err, c->errlen, "%s.content: Field required", path);
            return AL_EPARSE;
        }
        if (!YAJL_IS_STRING(ct) && !YAJL_IS_ARRAY(ct)) {
            set_err(c->err, c->errlen, "%s.content: Input should be a valid string or list", path);
            return AL_EPARSE;
        }
        rc = role->u.string[0] == 'u' ? put_user(c, ct, i) : put_assistant(c, ct, i);
        if (rc) return rc;
    }
    return 0;
}

static int put_tools(req_ctx_t *c, yajl_val tools)
{
    char path[64];
    for (size_t i = 0; i < tools->u.array.len; i++) {
        yajl_val t = tools->u.array.values[i], ty, name, desc, schema;
        snprintf(path, sizeof path, "tools.%zu", i);
        if (!YAJL_IS_OBJECT(t)) {
            set_err(c->err, c->errlen, "%s: Input should be a valid dictionary", path);
            return AL_EPARSE;
        }
        ty = al_json_get(t, "type");
        if (!nullish(ty) && (!YAJL_IS_STRING(ty) || strcmp(ty->u.string, "custom") != 0)) {
            set_err(c->err, c->errlen, "%s.type: unsupported tool type", path);
            return AL_EPARSE;
        }
        name = al_json_get(t, "name");
        desc = al_json_get(t, "description");
        schema = al_json_get(t, "input_schema");
        if (!YAJL_IS_STRING(name)) {
            set_err(c->err, c->errlen,
                    name ? "%s.name: Input should be a valid string" : "%s.name: Field required", path);
            return AL_EPARSE;
        }
        if (!nullish(desc) && !YAJL_IS_STRING(desc)) {
            set_err(c->err, c->errlen, "%s.description: Input should be a valid string", path);
            return AL_EPARSE;
        }
        if (!YAJL_IS_OBJECT(schema)) {
            set_err(c->err, c->errlen,
                    schema ? "%s.input_schema: Input should be a valid dictionary"
                           : "%s.input_schema: Field required",
                    path);
            return AL_EPARSE;
        }
        if (i) al_buf_putc(c->out, ',');
        al_buf_puts(c->out, "{\"type\":\"function\",\"function\":{\"name\":");
        put_str(c->out, name->u.string);
        if (YAJL_IS_STRING(desc)) {
            al_buf_puts(c->out, ",\"description\":");
            put_str(c->out, desc->u.string);
        }
        al_buf_puts(c->out, ",\"parameters\":");
        al_json_put(c->out, schema);
        al_buf_puts(c->out, "}}");
    }
    return 0;
}

/* tool_choice -> OpenAI tool_choice (+ parallel_tool_calls); written only
 * when tools are given (OpenAI refuses them otherwise), always validated. */
static int put_tool_choice(req_ctx_t *c, yajl_val tc, bool have_tools)
{
    yajl_val ty, name, dp;
    const char *t;

    if (nullish(tc)) return 0;
    if (!YAJL_IS_OBJECT(tc)) {
        set_err(c->err, c->errlen, "tool_choice: Input should be a valid dictionary");
        return AL_EPARSE;
    }
    ty = al_json_get(tc, "type");
    if (!YAJL_IS_STRING(ty)) {
        set_err(c->err, c->errlen, "tool_choice.type: Field required");
        return AL_EPARSE;
    }
    t = ty->u.string;
    if (strcmp(t, "auto") != 0 && strcmp(t, "any") != 0 && strcmp(t, "tool") != 0 &&
        strcmp(t, "none") != 0) {
        set_err(c->err, c->errlen, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
        return AL_EPARSE;
    }
    name = al_json_get(tc, "name");
    if (strcmp(t, "tool") == 0 && !YAJL_IS_STRING(name)) {
        set_err(c->err, c->errlen,
                name ? "tool_choice.name: Input should be a valid string" : "tool_choice.name: Field required");
        return AL_EPARSE;
    }
    dp = al_json_get(tc, "disable_parallel_tool_use");
    if (!nullish(dp) && !YAJL_IS_TRUE(dp) && !YAJL_IS_FALSE(dp)) {
        set_err(c->err, c->errlen, "tool_choice.disable_parallel_tool_use: Input should be a valid boolean");
        return AL_EPARSE;
    }
    if (!have_tools) return 0;
    al_buf_puts(c->out, ",\"tool_choice\":");
    if (t[0] == 'a' && t[1] == 'u') {
        al_buf_puts(c->out, "\"auto\"");
    } else if (t[0] == 'a') {
        al_buf_puts(c->out, "\"required\"");
    } else if (t[0] == 'n') {
        al_buf_puts(c->out, "\"none\"");
    } else {
        al_buf_puts(c->out, "{\"type\":\"function\",\"function\":{\"name\":");
        put_str(c->out, name->u.string);
        al_buf_puts(c->out, "}}");
    }
    if (YAJL_IS_TRUE(dp) && t[0] != 'n') al_buf_puts(c->out, ",\"parallel_tool_calls\":false");
    return 0;
}

/* temperature / top_p: a number passed through as written. */
static int put_number(req_ctx_t *c, yajl_val root, const char *key)
{
    yajl_val v = al_json_get(root, key);
    if (nullish(v)) return 0;
    if (!YAJL_IS_NUMBER(v)) {
        set_err(c->err, c->errlen, "%s: Input should be a valid number", key);
        return AL_EPARSE;
    }
    al_buf_printf(c->out, ",\"%s\":", key);
    al_buf_puts(c->out, v->u.number.r);
    return 0;
}

static int request_body(req_ctx_t *c, yajl_val root)
{
    yajl_val model, mt, msgs, v;
    int rc;

    if (!YAJL_IS_OBJECT(root)) {
        set_err(c->err, c->errlen, "body: Input should be a valid dictionary");
        return AL_EPARSE;
    }
    model = al_json_get(root, "model");
    if (!model) {
        set_err(c->err, c->errlen, "model: Field required");
        return AL_EPARSE;
    }
    if (!YAJL_IS_STRING(model)) {
        set_err(c->err, c->errlen, "model: Input should be a valid string");
        return AL_EPARSE;
    }
    mt = al_json_get(root, "max_tokens");
    if (!mt) {
        set_err(c->err, c->errlen, "max_tokens: Field required");
        return AL_EPARSE;
    }
    if (!YAJL_IS_INTEGER(mt)) {
        set_err(c->err, c->errlen, "max_tokens: Input should be a valid integer");
        return AL_EPARSE;
    }
    if (mt->u.number.i < 1) {
        set_err(c->err, c->errlen, "max_tokens: Input should be greater than or equal to 1");
        return AL_EPARSE;
    }
    msgs = al_json_get(root, "messages");
    if (!msgs) {
        set_err(c->err, c->errlen, "messages: Field required");
        return AL_EPARSE;
    }
    if (!YAJL_IS_ARRAY(msgs)) {
        set_err(c->err, c->errlen, "messages: Input should be a valid list");
        return AL_EPARSE;
    }
    if (msgs->u.array.len == 0) {
        set_err(c->err, c->errlen, "messages: at least one message is required");
        return AL_EPARSE;
    }

    al_buf_puts(c->out, "{\"model\":");
    put_str(c->out, model->u.string);
    al_buf_puts(c->out, ",\"messages\":[");
    rc = put_system(c, al_json_get(root, "system"));
    if (rc) return rc;
    rc = put_messages(c, msgs);
    if (rc) return rc;
    al_buf_printf(c->out, "],\"max_tokens\":%lld", (long long)mt->u.number.i);

    v = al_json_get(root, "stop_sequences");
    if (!nullish(v)) {
        if (!YAJL_IS_ARRAY(v)) {
            set_err(c->err, c->errlen, "stop_sequences: Input should be a valid list");
            return AL_EPARSE;
        }
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (!YAJL_IS_STRING(v->u.array.values[i])) {
                set_err(c->err, c->errlen, "stop_sequences.%zu: Input should be a valid string", i);
                return AL_EPARSE;
            }
        }
        if (v->u.array.len) {
            al_buf_puts(c->out, ",\"stop\":");
            al_json_put(c->out, v);
        }
    }
    if ((rc = put_number(c, root, "temperature")) != 0) return rc;
    if ((rc = put_number(c, root, "top_p")) != 0) return rc;
    v = al_json_get(root, "top_k");   /* validated, then dropped: OpenAI has no top_k */
    if (!nullish(v) && !YAJL_IS_INTEGER(v)) {
        set_err(c->err, c->errlen, "top_k: Input should be a valid integer");
        return AL_EPARSE;
    }
    v = al_json_get(root, "stream");
    if (!nullish(v)) {
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            set_err(c->err, c->errlen, "stream: Input should be a valid boolean");
            return AL_EPARSE;
        }
        if (YAJL_IS_TRUE(v))
            al_buf_puts(c->out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
        else
            al_buf_puts(c->out, ",\"stream\":false");
    }
    v = al_json_get(root, "metadata");
    if (!nullish(v)) {
        yajl_val uid;
        if (!YAJL_IS_OBJECT(v)) {
            set_err(c->err, c->errlen, "metadata: Input should be a valid dictionary");
            return AL_EPARSE;
        }
        uid = al_json_get(v, "user_id");
        if (!nullish(uid) && !YAJL_IS_STRING(uid)) {
            set_err(c->err, c->errlen, "metadata.user_id: Input should be a valid string");
            return AL_EPARSE;
        }
        if (YAJL_IS_STRING(uid)) {
            al_buf_puts(c->out, ",\"user\":");
            put_str(c->out, uid->u.string);
        }
    }
    v = al_json_get(root, "tools");
    if (!nullish(v) && !YAJL_IS_ARRAY(v)) {
        set_err(c->err, c->errlen, "tools: Input should be a valid list");
        return AL_EPARSE;
    }
    bool have_tools = YAJL_IS_ARRAY(v) && v->u.array.len > 0;
    if (have_tools) {
        al_buf_puts(c->out, ",\"tools\":[");
        rc = put_tools(c, v);
        if (rc) return rc;
        al_buf_putc(c->out, ']');
    }
    rc = put_tool_choice(c, al_json_get(root, "tool_choice"), have_tools);
    if (rc) return rc;
    v = al_json_get(root, "thinking");   /* dropped, but must be an object */
    if (!nullish(v) && !YAJL_IS_OBJECT(v)) {
        set_err(c->err, c->errlen, "thinking: Input should be a valid dictionary");
        return AL_EPARSE;
    }
    al_buf_putc(c->out, '}');
    return 0;
}

int al_msgs_request(const char *body, size_t len, al_buf_t *out, char *err, size_t errlen)
{
    yajl_val root = NULL;
    req_ctx_t c = {out, err, errlen, 0};
    size_t start = out->len;
    int rc;

    if (err && errlen) err[0] = '\0';
    rc = parse_tree(body, len, &root, err, errlen);
    if (rc) goto out;
    rc = request_body(&c, root);
    if (rc == 0 && out->err) {
        rc = out->err;
        set_err(err, errlen, "body: request too large");
    }
out:
    if (rc && out->p && out->len >= start && !out->err) {
        out->len = start;   /* leave out as it was */
        out->p[start] = '\0';
    }
    if (root) yajl_tree_free(root);
    return rc;
}

/* ---- response ----------------------------------------------------------- */

/* Usage members in the Messages shape: input_tokens excludes the cached
 * prompt tokens, which are reported as cache_read_input_tokens.  Without
 * full, only output_tokens (all a message_delta needs when nothing is
 * known). */
static void put_usage_members(al_buf_t *b, const al_usage_t *u, bool full)
{
    int64_t in = u->known ? u->input - u->cached : 0;
    if (in < 0) in = 0;
    if (!full) {
        al_buf_printf(b, "\"output_tokens\":%lld", (long long)(u->known ? u->output : 0));
        return;
    }
    al_buf_printf(b,
                  "\"input_tokens\":%lld,\"output_tokens\":%lld,"
                  "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":%lld",
                  (long long)in, (long long)(u->known ? u->output : 0),
                  (long long)(u->known ? u->cached : 0));
}

/* OpenAI arguments string -> the tool_use input object ({} unless it is a
 * JSON object). */
static void put_arguments(al_buf_t *b, yajl_val args)
{
    yajl_val t = NULL;
    if (YAJL_IS_STRING(args) && parse_tree(args->u.string, strlen(args->u.string), &t, NULL, 0) == 0 &&
        YAJL_IS_OBJECT(t))
        al_json_put(b, t);
    else
        al_buf_puts(b, "{}");
    if (t) yajl_tree_free(t);
}

/* The message's text: a string, or the text of an array of parts. */
static void put_content_text(al_buf_t *b, yajl_val ct, size_t *n)
{
    if (YAJL_IS_STRING(ct)) {
        if (!ct->u.string[0]) return;
        if ((*n)++) al_buf_putc(b, ',');
        al_buf_puts(b, "{\"type\":\"text\",\"text\":");
        put_str(b, ct->u.string);
        al_buf_putc(b, '}');
    } else if (YAJL_IS_ARRAY(ct)) {
        for (size_t i = 0; i < ct->u.array.len; i++) {
            yajl_val t = al_json_get(ct->u.array.values[i], "text");
            if (YAJL_IS_STRING(t)) put_content_text(b, t, n);
        }
    }
}

int al_msgs_response(const char *body, size_t len, const char *model, al_buf_t *out)
{
    yajl_val root = NULL, ch, msg, fr, tcs;
    al_usage_t u = {0};
    char id[96];
    size_t start = out->len, n = 0;
    int rc;

    rc = parse_tree(body, len, &root, NULL, 0);
    if (rc) goto out;
    ch = al_json_get(root, "choices");
    if (!YAJL_IS_ARRAY(ch) || ch->u.array.len == 0 || !YAJL_IS_OBJECT(ch->u.array.values[0])) {
        rc = AL_EPARSE;
        goto out;
    }
    msg = al_json_get(ch->u.array.values[0], "message");
    if (!YAJL_IS_OBJECT(msg)) {
        rc = AL_EPARSE;
        goto out;
    }
    fr = al_json_get(ch->u.array.values[0], "finish_reason");
    tcs = al_json_get(msg, "tool_calls");
    tree_usage(al_json_get(root, "usage"), &u);
    msg_id(al_json_get(root, "id"), id, sizeof id);
    if (!model) {
        yajl_val m = al_json_get(root, "model");
        model = YAJL_IS_STRING(m) ? m->u.string : "";
    }

    al_buf_puts(out, "{\"id\":");
    put_str(out, id);
    al_buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    put_str(out, model);
    al_buf_puts(out, ",\"content\":[");
    put_content_text(out, al_json_get(msg, "content"), &n);
    if (n == 0) put_content_text(out, al_json_get(msg, "refusal"), &n);
    if (YAJL_IS_ARRAY(tcs)) {
        for (size_t i = 0; i < tcs->u.array.len; i++) {
            yajl_val tc = tcs->u.array.values[i], fn = al_json_get(tc, "function"), tid, name;
            char gen[40];
            if (!YAJL_IS_OBJECT(fn)) continue;
            tid = al_json_get(tc, "id");
            name = al_json_get(fn, "name");
            if (n++) al_buf_putc(out, ',');
            al_buf_puts(out, "{\"type\":\"tool_use\",\"id\":");
            if (YAJL_IS_STRING(tid) && tid->u.string[0]) {
                put_str(out, tid->u.string);
            } else {
                random_id(gen, sizeof gen, "toolu_");
                put_str(out, gen);
            }
            al_buf_puts(out, ",\"name\":");
            put_str(out, YAJL_IS_STRING(name) ? name->u.string : "");
            al_buf_puts(out, ",\"input\":");
            put_arguments(out, al_json_get(fn, "arguments"));
            al_buf_putc(out, '}');
        }
    }
    al_buf_puts(out, "],\"stop_reason\":");
    if (YAJL_IS_STRING(fr))
        put_str(out, map_finish(fr->u.string));
    else
        put_str(out, YAJL_IS_ARRAY(tcs) && tcs->u.array.len ? "tool_use" : "end_turn");
    al_buf_puts(out, ",\"stop_sequence\":null,\"usage\":{");
    put_usage_members(out, &u, true);
    al_buf_puts(out, "}}");
    rc = out->err;
out:
    if (rc && out->p && out->len >= start && !out->err) {
        out->len = start;
        out->p[start] = '\0';
    }
    if (root) yajl_tree_free(root);
    return rc;
}

/* ---- errors ------------------------------------------------------------- */

static const char *error_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

static const char *default_message(const char *type)
{
    if (strcmp(type, "invalid_request_error") == 0) return "Invalid request";
    if (strcmp(type, "authentication_error") == 0) return "Invalid authentication";
    if (strcmp(type, "permission_error") == 0) return "Permission denied";
    if (strcmp(type, "not_found_error") == 0) return "Not found";
    if (strcmp(type, "request_too_large") == 0) return "Request too large";
    if (strcmp(type, "rate_limit_error") == 0) return "Rate limited";
    if (strcmp(type, "overloaded_error") == 0) return "Overloaded";
    return "Internal server error";
}

static void put_error(al_buf_t *b, const char *type, const char *message, const char *esc_id)
{
    if (!message || !message[0]) message = default_message(type);
    al_buf_puts(b, "{\"type\":\"error\",\"error\":{\"type\":");
    put_str(b, type);
    al_buf_puts(b, ",\"message\":");
    put_str(b, message);
    if (esc_id) {
        al_buf_puts(b, ",\"escalation_id\":");
        put_str(b, esc_id);
    }
    al_buf_puts(b, "}}");
}

int al_msgs_error(int status, const char *message, al_buf_t *out)
{
    put_error(out, error_type(status), message, NULL);
    return out->err;
}

int al_msgs_error_from_openai(int status, const char *body, size_t len, al_buf_t *out)
{
    yajl_val root = NULL, e, m = NULL, eid = NULL;
    if (body && parse_tree(body, len, &root, NULL, 0) == 0) {
        e = al_json_get(root, "error");
        if (YAJL_IS_OBJECT(e)) {
            m = al_json_get(e, "message");
            eid = al_json_get(e, "escalation_id");
        } else if (YAJL_IS_STRING(e)) {
            m = e;
        } else {
            m = al_json_get(root, "message");
        }
    }
    put_error(out, error_type(status), YAJL_IS_STRING(m) ? m->u.string : NULL,
              YAJL_IS_STRING(eid) ? eid->u.string : NULL);
    if (root) yajl_tree_free(root);
    return out->err;
}

/* ---- streaming ---------------------------------------------------------- */

enum { KIND_NONE = 0, KIND_TEXT = 1, KIND_TOOL = 2 };

static int send_event(al_msgs_stream_t *st, const char *event, al_buf_t *b)
{
    int rc = b->err;
    if (rc == 0) rc = st->emit(st->ud, event, b->p, b->len);
    al_buf_free(b);
    return rc < 0 ? rc : 0;
}

void al_msgs_stream_init(al_msgs_stream_t *st, const char *model, al_msgs_emit_fn emit, void *ud)
{
    memset(st, 0, sizeof *st);
    st->emit = emit;
    st->ud = ud;
    snprintf(st->model, sizeof st->model, "%s", model ? model : "");
    st->block = -1;
    st->block_kind = KIND_NONE;
    st->tool_index = -1;
}

static int stream_start(al_msgs_stream_t *st)
{
    al_buf_t b;
    if (st->started) return 0;
    st->started = true;
    if (!st->id[0]) random_id(st->id, sizeof st->id, "msg_");
    al_buf_init(&b, MSGS_SCRATCH_MAX);
    al_buf_puts(&b, "{\"type\":\"message_start\",\"message\":{\"id\":");
    put_str(&b, st->id);
    al_buf_puts(&b, ",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":");
    put_str(&b, st->model);
    al_buf_puts(&b, ",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{");
    put_usage_members(&b, &st->usage, true);
    al_buf_puts(&b, "}}}");
    return send_event(st, "message_start", &b);
}

static int close_block(al_msgs_stream_t *st)
{
    al_buf_t b;
    int32_t idx = st->block;
    if (idx < 0) return 0;
    st->block = -1;
    st->block_kind = KIND_NONE;
    al_buf_init(&b, 256);
    al_buf_printf(&b, "{\"type\":\"content_block_stop\",\"index\":%d}", (int)idx);
    return send_event(st, "content_block_stop", &b);
}

static int text_delta(al_msgs_stream_t *st, const char *s)
{
    al_buf_t b;
    int rc;
    if (!s[0]) return 0;
    if (st->block_kind != KIND_TEXT) {
        rc = close_block(st);
        if (rc) return rc;
        st->block = st->n_blocks++;
        st->block_kind = KIND_TEXT;
        al_buf_init(&b, 256);
        al_buf_printf(&b,
                      "{\"type\":\"content_block_start\",\"index\":%d,"
                      "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
                      (int)st->block);
        rc = send_event(st, "content_block_start", &b);
        if (rc) return rc;
    }
    al_buf_init(&b, MSGS_SCRATCH_MAX);
    al_buf_printf(&b, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"text_delta\",\"text\":",
                  (int)st->block);
    put_str(&b, s);
    al_buf_puts(&b, "}}");
    return send_event(st, "content_block_delta", &b);
}

/* One entry of delta.tool_calls.  Calls arrive in index order; a new index
 * closes the open block and starts a tool_use block.  Fragments for an index
 * whose block was already closed cannot be placed any more and are dropped. */
static int tool_delta(al_msgs_stream_t *st, yajl_val tc)
{
    yajl_val iv = al_json_get(tc, "index"), fn = al_json_get(tc, "function"), args;
    int64_t idx;
    al_buf_t b;
    int rc;

    if (!YAJL_IS_OBJECT(tc)) return 0;
    if (YAJL_IS_INTEGER(iv) && iv->u.number.i >= 0 && iv->u.number.i < INT32_MAX)
        idx = iv->u.number.i;
    else
        idx = st->tool_index >= 0 ? st->tool_index : 0;   /* no index: the current call */
    if (!(st->block_kind == KIND_TOOL && idx == st->tool_index)) {
        yajl_val id = al_json_get(tc, "id"), name = al_json_get(fn, "name");
        char gen[40];
        if (idx <= st->tool_index) return 0;
        rc = close_block(st);
        if (rc) return rc;
        st->tool_index = (int32_t)idx;
        st->block = st->n_blocks++;
        st->block_kind = KIND_TOOL;
        al_buf_init(&b, MSGS_SCRATCH_MAX);
        al_buf_printf(&b,
                      "{\"type\":\"content_block_start\",\"index\":%d,"
                      "\"content_block\":{\"type\":\"tool_use\",\"id\":",
                      (int)st->block);
        if (YAJL_IS_STRING(id) && id->u.string[0]) {
            put_str(&b, id->u.string);
        } else {
            random_id(gen, sizeof gen, "toolu_");
            put_str(&b, gen);
        }
        al_buf_puts(&b, ",\"name\":");
        put_str(&b, YAJL_IS_STRING(name) ? name->u.string : "");
        al_buf_puts(&b, ",\"input\":{}}}");
        rc = send_event(st, "content_block_start", &b);
        if (rc) return rc;
    }
    args = al_json_get(fn, "arguments");
    if (!YAJL_IS_STRING(args) || !args->u.string[0]) return 0;
    al_buf_init(&b, MSGS_SCRATCH_MAX);
    al_buf_printf(&b,
                  "{\"type\":\"content_block_delta\",\"index\":%d,"
                  "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":",
                  (int)st->block);
    put_str(&b, args->u.string);
    al_buf_puts(&b, "}}");
    return send_event(st, "content_block_delta", &b);
}

static int stream_choice(al_msgs_stream_t *st, yajl_val choice)
{
    yajl_val idx = al_json_get(choice, "index"), delta = al_json_get(choice, "delta"), fr, v;
    int rc;

    if (!YAJL_IS_OBJECT(choice)) return 0;
    if (YAJL_IS_NUMBER(idx) && !(YAJL_IS_INTEGER(idx) && idx->u.number.i == 0))
        return 0;   /* only the first choice is translated */
    if (YAJL_IS_OBJECT(delta)) {
        v = al_json_get(delta, "content");
        if (YAJL_IS_STRING(v) && (rc = text_delta(st, v->u.string)) != 0) return rc;
        v = al_json_get(delta, "refusal");
        if (YAJL_IS_STRING(v) && (rc = text_delta(st, v->u.string)) != 0) return rc;
        v = al_json_get(delta, "tool_calls");
        if (YAJL_IS_ARRAY(v)) {
            for (size_t i = 0; i < v->u.array.len; i++) {
                rc = tool_delta(st, v->u.array.values[i]);
                if (rc) return rc;
            }
        }
    }
    fr = al_json_get(choice, "finish_reason");
    if (YAJL_IS_STRING(fr))
        snprintf(st->stop_reason, sizeof st->stop_reason, "%s", map_finish(fr->u.string));
    return 0;
}

int al_msgs_stream_chunk(al_msgs_stream_t *st, const char *json, size_t len)
{
    yajl_val root = NULL, v, ch;
    int rc;

    rc = parse_tree(json, len, &root, NULL, 0);
    if (rc) {
        rc = AL_EPARSE;
        goto out;
    }
    if (!YAJL_IS_OBJECT(root)) {
        rc = AL_EPARSE;
        goto out;
    }
    if (st->finished) goto out;
    ch = al_json_get(root, "choices");
    v = al_json_get(root, "error");
    if (!nullish(v) && !ch) {
        /* an error inside the stream (data: {"error":{...}}) ends it */
        yajl_val m = YAJL_IS_OBJECT(v) ? al_json_get(v, "message") : v;
        rc = al_msgs_stream_error(st, "api_error", YAJL_IS_STRING(m) ? m->u.string : NULL);
        goto out;
    }
    if (!st->started) {
        yajl_val id = al_json_get(root, "id");
        if (YAJL_IS_STRING(id) && id->u.string[0]) msg_id(id, st->id, sizeof st->id);
    }
    tree_usage(al_json_get(root, "usage"), &st->usage);
    rc = stream_start(st);
    if (rc) goto out;
    if (YAJL_IS_ARRAY(ch)) {
        for (size_t i = 0; i < ch->u.array.len; i++) {
            rc = stream_choice(st, ch->u.array.values[i]);
            if (rc) goto out;
        }
    }
out:
    if (root) yajl_tree_free(root);
    return rc;
}

int al_msgs_stream_finish(al_msgs_stream_t *st)
{
    al_buf_t b;
    int rc;

    if (st->finished) return 0;
    rc = stream_start(st);
    st->finished = true;
    if (rc) return rc;
    rc = close_block(st);
    if (rc) return rc;
    al_buf_init(&b, 1024);
    al_buf_puts(&b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
    put_str(&b, st->stop_reason[0] ? st->stop_reason : "end_turn");
    al_buf_puts(&b, ",\"stop_sequence\":null},\"usage\":{");
    put_usage_members(&b, &st->usage, st->usage.known);
    al_buf_puts(&b, "}}");
    rc = send_event(st, "message_delta", &b);
    if (rc) return rc;
    al_buf_init(&b, 64);
    al_buf_puts(&b, "{\"type\":\"message_stop\"}");
    return send_event(st, "message_stop", &b);
}

int al_msgs_stream_error(al_msgs_stream_t *st, const char *type, const char *message)
{
    al_buf_t b;
    const char *t = type && type[0] ? type : "api_error";
    if (st->finished) return 0;
    st->finished = true;   /* nothing may follow an error event */
    al_buf_init(&b, MSGS_SCRATCH_MAX);
    put_error(&b, t, message, NULL);
    return send_event(st, "error", &b);
}
