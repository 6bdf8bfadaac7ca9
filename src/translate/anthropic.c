/* anthropic.c - the Anthropic Messages API behind an OpenAI face.
 *
 * Every input is parsed into a YAJL tree from a NUL-terminated copy (at most
 * 64 MiB); a cheap pre-scan first refuses NUL bytes, comments (YAJL's tree
 * parser would allow them) and nesting deeper than MAX_DEPTH, so the
 * recursive tree walks and yajl_tree_free stay bounded.  Object members are
 * looked up last-one-wins, as the request scanner (chatreq.c) resolves
 * duplicates; and since that scanner compares member names as written, a
 * request whose top-level member names use escapes is refused rather than
 * read differently from the policy checks.  Output is built with al_buf_t
 * (sticky error, checked once), strings through al_buf_json_str and numbers
 * copied as their raw text.  Requests: each message is rendered into
 * scratch buffers (tool_result blocks apart from the rest) and then added to
 * the open turn, so adjacent same-role messages merge into one turn with the
 * tool results first, as the Messages API requires, and a message that
 * renders to nothing does not split a merge.  Streams: each SSE event is parsed on
 * its own and turned into zero or more chat.completion.chunk objects; the
 * translator keeps only the open block's kind and index, the OpenAI tool
 * index and the usage so far (so a broken stream still has partial usage).
 * Error strings never quote request content. */
#include "translate/anthropic.h"
#include "util/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

#define MAX_INPUT ((size_t)64 << 20)
#define MAX_DEPTH 128
#define MAX_ERR_MSG 2048

enum { BLK_NONE = 0, BLK_TEXT, BLK_TOOL, BLK_OTHER };
enum { ROLE_NONE = 0, ROLE_USER, ROLE_ASSISTANT };

/* ---- parsing helpers ---------------------------------------------------- */

/* Bound the nesting and refuse what YAJL would accept beyond RFC 8259.  Sets
 * *esc_key when a member name of the top-level object contains an escape. */
static bool prescan(const char *p, size_t n, bool *esc_key)
{
    int depth = 0, str_depth = 0;
    bool in_str = false, str_esc = false, key_pending = false;
    *esc_key = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\0') return false;
        if (in_str) {
            if (c == '\\') {
                str_esc = true;
                i++;
                if (i < n && p[i] == '\0') return false;
            } else if (c == '"') {
                in_str = false;
                key_pending = str_esc && str_depth == 1;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            str_esc = false;
            str_depth = depth;
            break;
        case '{':
        case '[':
            if (++depth > MAX_DEPTH) return false;
            key_pending = false;
            break;
        case '}':
        case ']':
            depth--;
            key_pending = false;
            break;
        case '/': return false;
        case ':':
            if (key_pending) *esc_key = true;
            key_pending = false;
            break;
        case ' ': case '\t': case '\n': case '\r': break;
        default: key_pending = false; break;
        }
    }
    return true;
}

/* Parse p/n into *out (caller frees with yajl_tree_free).  0, AL_ETOOBIG,
 * AL_EPARSE or AL_ENOMEM. */
static int parse_tree(const char *p, size_t n, yajl_val *out, bool *esc_key)
{
    char ebuf[128];
    bool dummy;
    *out = NULL;
    if (!esc_key) esc_key = &dummy;
    if (n > MAX_INPUT) return AL_ETOOBIG;
    if (!p || n == 0 || !prescan(p, n, esc_key)) return AL_EPARSE;
    char *copy = malloc(n + 1);
    if (!copy) return AL_ENOMEM;
    memcpy(copy, p, n);
    copy[n] = '\0';
    *out = yajl_tree_parse(copy, ebuf, sizeof ebuf);   /* ebuf may quote input: unused */
    free(copy);
    return *out ? 0 : AL_EPARSE;
}

static const char *jstr(yajl_val o, const char *key)
{
    yajl_val v = al_json_get(o, key);
    return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

static bool absent(yajl_val v)
{
    return v == NULL || YAJL_IS_NULL(v);
}

/* A token counter: a non-negative integer, else 0 (usage is advisory). */
static int64_t jcount(yajl_val v)
{
    if (YAJL_IS_INTEGER(v) && v->u.number.i > 0) return (int64_t)v->u.number.i;
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void put_str(al_buf_t *b, const char *s)
{
    al_buf_json_str(b, s, s ? strlen(s) : 0);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* ---- request: OpenAI chat body -> Messages body ------------------------- */

typedef struct rq {
    al_buf_t msgs;     /* the "messages" array contents */
    al_buf_t sys;      /* system text, raw */
    al_buf_t tr;       /* open turn: tool_result blocks */
    al_buf_t other;    /* open turn: every other block */
    al_buf_t mtr, mother;   /* the message being rendered, likewise */
    size_t n_tr, n_other, n_mtr, n_mother, n_turns;
    int role;
    char *err;
    size_t errlen;
} rq_t;

static void next_block(al_buf_t *b, size_t *n)
{
    if ((*n)++) al_buf_putc(b, ',');
}

/* Write the open turn (if it has any block) and start a new one. */
static void flush_turn(rq_t *r, int role)
{
    if (r->role != ROLE_NONE && r->n_tr + r->n_other > 0) {
        if (r->n_turns++) al_buf_putc(&r->msgs, ',');
        al_buf_puts(&r->msgs, r->role == ROLE_USER ? "{\"role\":\"user\",\"content\":["
                                                   : "{\"role\":\"assistant\",\"content\":[");
        if (r->tr.len) al_buf_append(&r->msgs, r->tr.p, r->tr.len);
        if (r->tr.len && r->other.len) al_buf_putc(&r->msgs, ',');
        if (r->other.len) al_buf_append(&r->msgs, r->other.p, r->other.len);
        al_buf_puts(&r->msgs, "]}");
        if (r->tr.err && !r->msgs.err) r->msgs.err = r->tr.err;
        if (r->other.err && !r->msgs.err) r->msgs.err = r->other.err;
    }
    al_buf_reset(&r->tr);
    al_buf_reset(&r->other);
    r->n_tr = r->n_other = 0;
    r->role = role;
}

/* Add the rendered message to the open turn, first closing that turn when
 * the role changes.  A message that rendered to nothing (empty content) is
 * skipped without closing anything, so its neighbours still merge. */
static void commit_message(rq_t *r, int role)
{
    if (r->n_mtr + r->n_mother > 0) {
        if (r->role != role) flush_turn(r, role);
        if (r->n_mtr) {
            if (r->n_tr) al_buf_putc(&r->tr, ',');
            al_buf_append(&r->tr, r->mtr.p, r->mtr.len);
            r->n_tr += r->n_mtr;
        }
        if (r->n_mother) {
            if (r->n_other) al_buf_putc(&r->other, ',');
            al_buf_append(&r->other, r->mother.p, r->mother.len);
            r->n_other += r->n_mother;
        }
        if (r->mtr.err && !r->tr.err) r->tr.err = r->mtr.err;
        if (r->mother.err && !r->other.err) r->other.err = r->mother.err;
    }
    al_buf_reset(&r->mtr);
    al_buf_reset(&r->mother);
    r->n_mtr = r->n_mother = 0;
}

static void text_block(al_buf_t *b, size_t *n, const char *text)
{
    if (!text || !*text) return;   /* the Messages API refuses empty text blocks */
    next_block(b, n);
    al_buf_puts(b, "{\"type\":\"text\",\"text\":");
    put_str(b, text);
    al_buf_putc(b, '}');
}

/* Split a data: URL into media type and base64 payload.  0 or AL_EINVAL. */
static int data_url(const char *url, const char **mt, size_t *mtlen, const char **data)
{
    const char *comma, *semi;
    if (strncasecmp(url, "data:", 5) != 0) return AL_EINVAL;
    url += 5;
    comma = strchr(url, ',');
    if (!comma || comma - url < 7 || strncasecmp(comma - 7, ";base64", 7) != 0) return AL_EINVAL;
    semi = memchr(url, ';', (size_t)(comma - url));
    *mt = url;
    *mtlen = (size_t)(semi - url);
    *data = comma + 1;
    return *mtlen ? 0 : AL_EINVAL;
}

static void base64_source(al_buf_t *b, const char *mt, size_t mtlen, const char *data)
{
    al_buf_puts(b, "{\"type\":\"base64\",\"media_type\":");
    al_buf_json_str(b, mt, mtlen);
    al_buf_puts(b, ",\"data\":");
    put_str(b, data);
    al_buf_putc(b, '}');
}

static int image_block(rq_t *r, yajl_val part, size_t mi)
{
    yajl_val iu = al_json_get(part, "image_url");
    const char *url = YAJL_IS_STRING(iu) ? iu->u.string : jstr(iu, "url");
    const char *mt, *data;
    size_t mtlen;
    if (!url) {
        seterr(r->err, r->errlen, "message %zu: image_url part without url", mi);
        return AL_EINVAL;
    }
    if (strncasecmp(url, "data:", 5) == 0) {
        if (data_url(url, &mt, &mtlen, &data) != 0) {
            seterr(r->err, r->errlen, "message %zu: image data URL must be base64 with a media type", mi);
            return AL_EINVAL;
        }
        next_block(&r->mother, &r->n_mother);
        al_buf_puts(&r->mother, "{\"type\":\"image\",\"source\":");
        base64_source(&r->mother, mt, mtlen, data);
        al_buf_putc(&r->mother, '}');
        return 0;
    }
    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
        seterr(r->err, r->errlen, "message %zu: image URL must be https, http or data", mi);
        return AL_EINVAL;
    }
    next_block(&r->mother, &r->n_mother);
    al_buf_puts(&r->mother, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
    put_str(&r->mother, url);
    al_buf_puts(&r->mother, "}}");
    return 0;
}

static int file_block(rq_t *r, yajl_val part, size_t mi)
{
    const char *fd = jstr(al_json_get(part, "file"), "file_data");
    const char *mt, *data;
    size_t mtlen;
    if (!fd || data_url(fd, &mt, &mtlen, &data) != 0) {
        seterr(r->err, r->errlen, "message %zu: file parts need file_data as a base64 data URL", mi);
        return AL_EINVAL;
    }
    next_block(&r->mother, &r->n_mother);
    al_buf_puts(&r->mother, "{\"type\":\"document\",\"source\":");
    base64_source(&r->mother, mt, mtlen, data);
    al_buf_putc(&r->mother, '}');
    return 0;
}

/* User content: a string or text / image_url / file parts. */
static int user_content(rq_t *r, yajl_val c, size_t mi)
{
    int rc;
    if (absent(c)) return 0;
    if (YAJL_IS_STRING(c)) {
        text_block(&r->mother, &r->n_mother, c->u.string);
        return 0;
    }
    if (!YAJL_IS_ARRAY(c)) goto bad;
    for (size_t i = 0; i < c->u.array.len; i++) {
        yajl_val part = c->u.array.values[i];
        const char *t = jstr(part, "type");
        if (!t) goto bad;
        if (strcmp(t, "text") == 0) {
            const char *text = jstr(part, "text");
            if (!text) goto bad;
            text_block(&r->mother, &r->n_mother, text);
        } else if (strcmp(t, "image_url") == 0) {
            if ((rc = image_block(r, part, mi)) != 0) return rc;
        } else if (strcmp(t, "file") == 0) {
            if ((rc = file_block(r, part, mi)) != 0) return rc;
        } else {
            seterr(r->err, r->errlen, "message %zu: content part %zu has an unsupported type", mi, i);
            return AL_EINVAL;
        }
    }
    return 0;
bad:
    seterr(r->err, r->errlen, "message %zu: malformed content", mi);
    return AL_EINVAL;
}

/* Text of a system/assistant/tool content: string or text (refusal) parts,
 * appended as blocks to b (or raw to sys when sys != NULL). */
static int text_parts(rq_t *r, yajl_val c, size_t mi, al_buf_t *b, size_t *n, bool to_sys)
{
    if (absent(c)) return 0;
    if (YAJL_IS_STRING(c)) {
        if (to_sys && *c->u.string) {
            if (r->sys.len) al_buf_puts(&r->sys, "\n\n");
            al_buf_puts(&r->sys, c->u.string);
        } else if (!to_sys) {
            text_block(b, n, c->u.string);
        }
        return 0;
    }
    if (!YAJL_IS_ARRAY(c)) goto bad;
    for (size_t i = 0; i < c->u.array.len; i++) {
        yajl_val part = c->u.array.values[i];
        const char *t = jstr(part, "type"), *text;
        if (!t) goto bad;
        if (strcmp(t, "text") == 0)
            text = jstr(part, "text");
        else if (strcmp(t, "refusal") == 0)
            text = jstr(part, "refusal");
        else {
            seterr(r->err, r->errlen, "message %zu: content part %zu has an unsupported type", mi, i);
            return AL_EINVAL;
        }
        if (!text) goto bad;
        if (to_sys) {
            if (!*text) continue;
            if (r->sys.len) al_buf_puts(&r->sys, "\n\n");
            al_buf_puts(&r->sys, text);
        } else {
            text_block(b, n, text);
        }
    }
    return 0;
bad:
    seterr(r->err, r->errlen, "message %zu: malformed content", mi);
    return AL_EINVAL;
}

/* Tool ids are limited to [A-Za-z0-9_-] by the Messages API; other bytes
 * become '_' the same way in tool_use and tool_result so they still pair. */
static void put_tool_id(al_buf_t *b, const char *id)
{
    al_buf_putc(b, '"');
    for (const char *p = id; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        al_buf_putc(b, ok ? c : '_');
    }
    al_buf_putc(b, '"');
}

/* Tool arguments (a JSON string) -> the tool_use input object. */
static void put_arguments(al_buf_t *b, const char *args)
{
    yajl_val v = NULL;
    size_t n = args ? strlen(args) : 0;
    size_t i = 0;
    while (i < n && (args[i] == ' ' || args[i] == '\t' || args[i] == '\n' || args[i] == '\r')) i++;
    if (i == n) {
        al_buf_puts(b, "{}");
        return;
    }
    if (parse_tree(args, n, &v, NULL) == 0 && YAJL_IS_OBJECT(v)) {
        al_json_put(b, v);
    } else {
        al_buf_puts(b, "{\"_raw\":");
        put_str(b, args);
        al_buf_putc(b, '}');
    }
    if (v) yajl_tree_free(v);
}

static int assistant_msg(rq_t *r, yajl_val m, size_t mi)
{
    int rc = text_parts(r, al_json_get(m, "content"), mi, &r->mother, &r->n_mother, false);
    yajl_val calls = al_json_get(m, "tool_calls");
    if (rc) return rc;
    if (absent(calls)) return 0;
    if (!YAJL_IS_ARRAY(calls)) goto bad;
    for (size_t i = 0; i < calls->u.array.len; i++) {
        yajl_val tc = calls->u.array.values[i], fn = al_json_get(tc, "function");
        const char *id = jstr(tc, "id"), *type = jstr(tc, "type"), *name = jstr(fn, "name");
        yajl_val args = al_json_get(fn, "arguments");
        if (type && strcmp(type, "function") != 0) {
            seterr(r->err, r->errlen, "message %zu: tool call %zu is not a function call", mi, i);
            return AL_EINVAL;
        }
        if (!id || !*id || !name || !*name || !(absent(args) || YAJL_IS_STRING(args))) goto bad;
        next_block(&r->mother, &r->n_mother);
        al_buf_puts(&r->mother, "{\"type\":\"tool_use\",\"id\":");
        put_tool_id(&r->mother, id);
        al_buf_puts(&r->mother, ",\"name\":");
        put_str(&r->mother, name);
        al_buf_puts(&r->mother, ",\"input\":");
        put_arguments(&r->mother, YAJL_IS_STRING(args) ? args->u.string : NULL);
        al_buf_putc(&r->mother, '}');
    }
    return 0;
bad:
    seterr(r->err, r->errlen, "message %zu: malformed tool_calls", mi);
    return AL_EINVAL;
}

static int tool_msg(rq_t *r, yajl_val m, size_t mi)
{
    const char *id = jstr(m, "tool_call_id");
    al_buf_t blocks;
    size_t nb = 0;
    int rc;
    if (!id || !*id) {
        seterr(r->err, r->errlen, "message %zu: tool message without tool_call_id", mi);
        return AL_EINVAL;
    }
    al_buf_init(&blocks, r->mtr.max);
    rc = text_parts(r, al_json_get(m, "content"), mi, &blocks, &nb, false);
    if (rc) goto out;
    next_block(&r->mtr, &r->n_mtr);
    al_buf_puts(&r->mtr, "{\"type\":\"tool_result\",\"tool_use_id\":");
    put_tool_id(&r->mtr, id);
    if (nb) {
        al_buf_puts(&r->mtr, ",\"content\":[");
        al_buf_append(&r->mtr, blocks.p, blocks.len);
        al_buf_putc(&r->mtr, ']');
    }
    al_buf_putc(&r->mtr, '}');
    if (blocks.err && !r->mtr.err) r->mtr.err = blocks.err;
out:
    al_buf_free(&blocks);
    return rc;
}

static int messages(rq_t *r, yajl_val msgs)
{
    int rc;
    if (!YAJL_IS_ARRAY(msgs)) {
        seterr(r->err, r->errlen, "messages must be an array");
        return AL_EINVAL;
    }
    for (size_t i = 0; i < msgs->u.array.len; i++) {
        yajl_val m = msgs->u.array.values[i];
        const char *role = jstr(m, "role");
        if (!role) {
            seterr(r->err, r->errlen, "message %zu: role required", i);
            return AL_EINVAL;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            rc = text_parts(r, al_json_get(m, "content"), i, NULL, NULL, true);
        } else if (strcmp(role, "user") == 0) {
            if ((rc = user_content(r, al_json_get(m, "content"), i)) == 0) commit_message(r, ROLE_USER);
        } else if (strcmp(role, "assistant") == 0) {
            if ((rc = assistant_msg(r, m, i)) == 0) commit_message(r, ROLE_ASSISTANT);
        } else if (strcmp(role, "tool") == 0) {
            if ((rc = tool_msg(r, m, i)) == 0) commit_message(r, ROLE_USER);
        } else {
            seterr(r->err, r->errlen, "message %zu: unknown role", i);
            return AL_EINVAL;
        }
        if (rc) return rc;
    }
    flush_turn(r, ROLE_NONE);
    if (r->n_turns == 0) {
        seterr(r->err, r->errlen, "messages: no user or assistant content to send");
        return AL_EINVAL;
    }
    return 0;
}

static int tools(yajl_val tl, al_buf_t *out, char *err, size_t errlen)
{
    al_buf_puts(out, ",\"tools\":[");
    for (size_t i = 0; i < tl->u.array.len; i++) {
        yajl_val t = tl->u.array.values[i], fn = al_json_get(t, "function"), params;
        const char *type = jstr(t, "type"), *name = jstr(fn, "name"), *desc;
        if (type && strcmp(type, "function") != 0) {
            seterr(err, errlen, "tools[%zu]: only function tools are supported", i);
            return AL_EINVAL;
        }
        if (!name || !*name) {
            seterr(err, errlen, "tools[%zu]: function.name required", i);
            return AL_EINVAL;
        }
        if (i) al_buf_putc(out, ',');
        al_buf_puts(out, "{\"name\":");
        put_str(out, name);
        if ((desc = jstr(fn, "description")) != NULL && *desc) {
            al_buf_puts(out, ",\"description\":");
            put_str(out, desc);
        }
        al_buf_puts(out, ",\"input_schema\":");
        params = al_json_get(fn, "parameters");
        if (YAJL_IS_OBJECT(params))
            al_json_put(out, params);
        else
            al_buf_puts(out, "{\"type\":\"object\",\"properties\":{}}");
        al_buf_putc(out, '}');
    }
    al_buf_putc(out, ']');
    return 0;
}

static int tool_choice(yajl_val tc, yajl_val par, al_buf_t *out, char *err, size_t errlen)
{
    const char *s = YAJL_IS_STRING(tc) ? tc->u.string : NULL, *name = NULL;
    bool no_parallel = YAJL_IS_FALSE(par);
    if (absent(tc)) {
        s = "auto";
        if (!no_parallel) return 0;
    } else if (!s) {
        const char *type = jstr(tc, "type");
        name = jstr(al_json_get(tc, "function"), "name");
        if (!type || strcmp(type, "function") != 0 || !name || !*name) {
            seterr(err, errlen, "tool_choice: unsupported value");
            return AL_EINVAL;
        }
    }
    if (name) {
        al_buf_puts(out, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
        put_str(out, name);
    } else if (strcmp(s, "auto") == 0) {
        al_buf_puts(out, ",\"tool_choice\":{\"type\":\"auto\"");
    } else if (strcmp(s, "required") == 0) {
        al_buf_puts(out, ",\"tool_choice\":{\"type\":\"any\"");
    } else if (strcmp(s, "none") == 0) {
        al_buf_puts(out, ",\"tool_choice\":{\"type\":\"none\"}");
        return 0;
    } else {
        seterr(err, errlen, "tool_choice: unsupported value");
        return AL_EINVAL;
    }
    if (no_parallel) al_buf_puts(out, ",\"disable_parallel_tool_use\":true");
    al_buf_putc(out, '}');
    return 0;
}

static int stop_sequences(yajl_val st, al_buf_t *out, char *err, size_t errlen)
{
    size_t n = 0;
    if (absent(st)) return 0;
    if (YAJL_IS_STRING(st)) {
        if (!*st->u.string) return 0;
        al_buf_puts(out, ",\"stop_sequences\":[");
        put_str(out, st->u.string);
        al_buf_putc(out, ']');
        return 0;
    }
    if (!YAJL_IS_ARRAY(st)) goto bad;
    for (size_t i = 0; i < st->u.array.len; i++)
        if (!YAJL_IS_STRING(st->u.array.values[i])) goto bad;
    for (size_t i = 0; i < st->u.array.len; i++) {
        const char *s = st->u.array.values[i]->u.string;
        if (!*s) continue;
        al_buf_puts(out, n++ ? "," : ",\"stop_sequences\":[");
        put_str(out, s);
    }
    if (n) al_buf_putc(out, ']');
    return 0;
bad:
    seterr(err, errlen, "stop must be a string or an array of strings");
    return AL_EINVAL;
}

/* max_completion_tokens, then max_tokens, then the default; >= 1. */
static int max_tokens(yajl_val root, uint32_t dflt, int64_t *out, char *err, size_t errlen)
{
    yajl_val v = al_json_get(root, "max_completion_tokens");
    if (absent(v)) v = al_json_get(root, "max_tokens");
    if (absent(v)) {
        *out = dflt ? dflt : 4096;
        return 0;
    }
    if (!YAJL_IS_INTEGER(v) || v->u.number.i < 1) {
        seterr(err, errlen, "max_tokens must be a positive integer");
        return AL_EINVAL;
    }
    *out = (int64_t)v->u.number.i;
    return 0;
}

int al_anth_request(const char *body, size_t len, const char *upstream_model,
                    uint32_t default_max_tokens, al_buf_t *out, char *err, size_t errlen)
{
    yajl_val root = NULL, v;
    rq_t r;
    int64_t maxt = 0;
    bool esc_key = false, has_temp;
    const char *model, *user;
    int rc;

    memset(&r, 0, sizeof r);
    r.err = err;
    r.errlen = errlen;
    al_buf_init(&r.msgs, out->max);
    al_buf_init(&r.sys, out->max);
    al_buf_init(&r.tr, out->max);
    al_buf_init(&r.other, out->max);
    al_buf_init(&r.mtr, out->max);
    al_buf_init(&r.mother, out->max);
    if (err && errlen) err[0] = '\0';

    rc = parse_tree(body, len, &root, &esc_key);
    if (rc == AL_ETOOBIG) {
        seterr(err, errlen, "request body too large");
        goto out;
    }
    if (rc || !YAJL_IS_OBJECT(root)) {
        seterr(err, errlen, rc == AL_ENOMEM ? "out of memory" : "request body is not a JSON object");
        rc = rc == AL_ENOMEM ? rc : AL_EPARSE;
        goto out;
    }
    if (esc_key) {
        /* chatreq compares names as written: refuse a body it would read differently */
        seterr(err, errlen, "escaped top-level member names are not supported");
        rc = AL_EINVAL;
        goto out;
    }
    v = al_json_get(root, "n");
    if (!absent(v) && !(YAJL_IS_INTEGER(v) && v->u.number.i == 1)) {
        seterr(err, errlen, "n must be 1");
        rc = AL_EINVAL;
        goto out;
    }
    model = upstream_model ? upstream_model : jstr(root, "model");
    if (!model || !*model) {
        seterr(err, errlen, "model required");
        rc = AL_EINVAL;
        goto out;
    }
    if ((rc = max_tokens(root, default_max_tokens, &maxt, err, errlen)) != 0) goto out;
    if ((rc = messages(&r, al_json_get(root, "messages"))) != 0) goto out;

    al_buf_puts(out, "{\"model\":");
    put_str(out, model);
    al_buf_printf(out, ",\"max_tokens\":%lld", (long long)maxt);
    if (r.sys.len) {
        al_buf_puts(out, ",\"system\":");
        al_buf_json_str(out, r.sys.p, r.sys.len);
    }
    al_buf_puts(out, ",\"messages\":[");
    al_buf_append(out, r.msgs.p, r.msgs.len);
    al_buf_putc(out, ']');

    v = al_json_get(root, "tools");
    if (!absent(v) && !YAJL_IS_ARRAY(v)) {
        seterr(err, errlen, "tools must be an array");
        rc = AL_EINVAL;
        goto out;
    }
    if (YAJL_IS_ARRAY(v) && v->u.array.len > 0) {
        if ((rc = tools(v, out, err, errlen)) != 0) goto out;
        /* tool_choice without tools is meaningless to the Messages API: dropped */
        rc = tool_choice(al_json_get(root, "tool_choice"), al_json_get(root, "parallel_tool_calls"), out, err,
                         errlen);
        if (rc) goto out;
    }
    if ((rc = stop_sequences(al_json_get(root, "stop"), out, err, errlen)) != 0) goto out;

    v = al_json_get(root, "temperature");
    has_temp = !absent(v);
    if (has_temp) {
        if (!YAJL_IS_NUMBER(v)) {
            seterr(err, errlen, "temperature must be a number");
            rc = AL_EINVAL;
            goto out;
        }
        /* OpenAI allows 0..2, the Messages API 0..1: clamp the top */
        al_buf_puts(out, ",\"temperature\":");
        al_buf_puts(out, YAJL_IS_DOUBLE(v) && v->u.number.d > 1.0 ? "1" : v->u.number.r);
    }
    v = al_json_get(root, "top_p");
    if (!absent(v)) {
        if (!YAJL_IS_NUMBER(v)) {
            seterr(err, errlen, "top_p must be a number");
            rc = AL_EINVAL;
            goto out;
        }
    }
    /* Current Claude models refuse temperature and top_p together
     * ("cannot both be specified"): temperature wins */
    if (!absent(v) && !has_temp) {
        al_buf_puts(out, ",\"top_p\":");
        al_buf_puts(out, v->u.number.r);
    }
    user = jstr(root, "user");
    if (!user || !*user) user = jstr(root, "safety_identifier");
    if (user && *user) {
        /* the Messages API caps user_id at 256 characters */
        al_buf_puts(out, ",\"metadata\":{\"user_id\":");
        al_buf_json_str(out, user, utf8_cut(user, 256));
        al_buf_putc(out, '}');
    }
    if (YAJL_IS_TRUE(al_json_get(root, "stream"))) al_buf_puts(out, ",\"stream\":true");
    al_buf_putc(out, '}');

    rc = r.msgs.err ? r.msgs.err : r.sys.err ? r.sys.err : out->err;
    if (rc == AL_ETOOBIG) seterr(err, errlen, "translated request too large");
    else if (rc) seterr(err, errlen, "out of memory");
out:
    if (root) yajl_tree_free(root);
    al_buf_free(&r.msgs);
    al_buf_free(&r.sys);
    al_buf_free(&r.tr);
    al_buf_free(&r.other);
    al_buf_free(&r.mtr);
    al_buf_free(&r.mother);
    return rc;
}

/* ---- responses ---------------------------------------------------------- */

static const char *finish_reason(const char *stop)
{
    if (!stop) return "stop";
    if (strcmp(stop, "max_tokens") == 0 || strcmp(stop, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop, "tool_use") == 0) return "tool_calls";
    if (strcmp(stop, "refusal") == 0) return "content_filter";
    return "stop";   /* end_turn, stop_sequence, pause_turn and anything new */
}

/* "chatcmpl-" + the Messages id without "msg_", restricted to [A-Za-z0-9_-]
 * and cut to fit; a random one when nothing is left. */
static void make_id(char *dst, size_t cap, const char *src)
{
    static const char pre[] = "chatcmpl-";
    size_t n = sizeof pre - 1;
    memcpy(dst, pre, n);
    if (src && strncmp(src, "msg_", 4) == 0) src += 4;
    if (src && strncmp(src, pre, sizeof pre - 1) == 0) src += sizeof pre - 1;
    for (; src && *src && n + 1 < cap; src++) {
        char c = *src;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-')
            dst[n++] = c;
    }
    if (n == sizeof pre - 1) {
        uint8_t rnd[12];
        al_fast_random(rnd, sizeof rnd);
        for (size_t i = 0; i < sizeof rnd && n + 2 < cap; i++) {
            dst[n++] = "0123456789abcdef"[rnd[i] >> 4];
            dst[n++] = "0123456789abcdef"[rnd[i] & 15];
        }
    }
    dst[n] = '\0';
}

static void put_usage(al_buf_t *b, int64_t prompt, int64_t completion, int64_t cached,
                      int64_t cache_creation)
{
    al_buf_printf(b,
                  "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
                  "\"prompt_tokens_details\":{\"cached_tokens\":%lld},"
                  "\"completion_tokens_details\":{\"reasoning_tokens\":0},"
                  "\"cache_creation_input_tokens\":%lld}",
                  (long long)prompt, (long long)completion,
                  (long long)sat_add(prompt, completion), (long long)cached,
                  (long long)cache_creation);
}

/* Anthropic usage object -> al_usage_t (+ cache_creation). */
static void read_usage(yajl_val u, al_usage_t *out, int64_t *cache_creation)
{
    int64_t in = jcount(al_json_get(u, "input_tokens")), cr = jcount(al_json_get(u, "cache_read_input_tokens")),
            cc = jcount(al_json_get(u, "cache_creation_input_tokens"));
    out->known = true;
    out->input = sat_add(sat_add(in, cr), cc);
    out->output = jcount(al_json_get(u, "output_tokens"));
    out->cached = cr;
    *cache_creation = cc;
}

int al_anth_response(const char *body, size_t len, const char *id_hint, al_buf_t *out,
                     al_usage_t *usage)
{
    yajl_val root = NULL, content, u;
    al_buf_t text, calls;
    al_usage_t us = {0};
    int64_t cc = 0;
    size_t n_calls = 0;
    bool any_text = false;
    char id[96];
    const char *type, *model;
    int rc;

    al_buf_init(&text, out->max);
    al_buf_init(&calls, out->max);
    if (usage) memset(usage, 0, sizeof *usage);
    rc = parse_tree(body, len, &root, NULL);
    if (rc) goto out;
    rc = AL_EPARSE;
    if (!YAJL_IS_OBJECT(root)) goto out;
    type = jstr(root, "type");
    if (type && strcmp(type, "message") != 0) goto out;
    content = al_json_get(root, "content");
    if (!YAJL_IS_ARRAY(content)) goto out;
    for (size_t i = 0; i < content->u.array.len; i++) {
        yajl_val blk = content->u.array.values[i];
        const char *bt = jstr(blk, "type");
        if (!bt) goto out;
        if (strcmp(bt, "text") == 0) {
            const char *t = jstr(blk, "text");
            if (!t) goto out;
            al_buf_puts(&text, t);
            any_text = true;
        } else if (strcmp(bt, "tool_use") == 0) {
            const char *tid = jstr(blk, "id"), *name = jstr(blk, "name");
            yajl_val input = al_json_get(blk, "input");
            al_buf_t args;
            if (!tid || !name) goto out;
            if (n_calls++) al_buf_putc(&calls, ',');
            al_buf_puts(&calls, "{\"id\":");
            put_str(&calls, tid);
            al_buf_puts(&calls, ",\"type\":\"function\",\"function\":{\"name\":");
            put_str(&calls, name);
            al_buf_puts(&calls, ",\"arguments\":");
            al_buf_init(&args, out->max);
            if (input)
                al_json_put(&args, input);
            else
                al_buf_puts(&args, "{}");
            al_buf_json_str(&calls, args.p, args.len);
            if (args.err && !calls.err) calls.err = args.err;
            al_buf_free(&args);
            al_buf_puts(&calls, "}}");
        }
        /* thinking, redacted_thinking and server-side tool blocks have no
         * chat-completions counterpart: dropped */
    }
    make_id(id, sizeof id, jstr(root, "id") ? jstr(root, "id") : id_hint);
    model = jstr(root, "model");
    al_buf_puts(out, "{\"id\":");
    put_str(out, id);
    al_buf_printf(out, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
                  (long long)(al_wall_ms() / 1000));
    put_str(out, model ? model : "");
    al_buf_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (!any_text && n_calls)
        al_buf_puts(out, "null");
    else
        al_buf_json_str(out, text.p, text.len);
    al_buf_puts(out, ",\"refusal\":null");
    if (n_calls) {
        al_buf_puts(out, ",\"tool_calls\":[");
        al_buf_append(out, calls.p, calls.len);
        al_buf_putc(out, ']');
    }
    al_buf_puts(out, ",\"annotations\":[]},\"logprobs\":null,\"finish_reason\":");
    put_str(out, finish_reason(jstr(root, "stop_reason")));
    al_buf_puts(out, "}]");
    u = al_json_get(root, "usage");
    if (YAJL_IS_OBJECT(u)) {
        read_usage(u, &us, &cc);
        al_buf_puts(out, ",\"usage\":");
        put_usage(out, us.input, us.output, us.cached, cc);
    }
    al_buf_puts(out, ",\"system_fingerprint\":null}");
    rc = text.err ? text.err : calls.err ? calls.err : out->err;
    if (rc == 0 && usage) *usage = us;
out:
    if (root) yajl_tree_free(root);
    al_buf_free(&text);
    al_buf_free(&calls);
    return rc;
}

/* ---- errors ------------------------------------------------------------- */

static const char *map_error_type(const char *t, int status)
{
    static const char *const map[][2] = {
        {"invalid_request_error", "invalid_request_error"},
        {"request_too_large", "invalid_request_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_denied"},
        {"not_found_error", "not_found"},
        {"rate_limit_error", "rate_limit_exceeded"},
        {"billing_error", "insufficient_quota"},
        {"api_error", "server_error"},
        {"timeout_error", "server_error"},
        {"overloaded_error", "overloaded"},
    };
    for (size_t i = 0; t && i < AL_ARRAY_LEN(map); i++)
        if (strcmp(t, map[i][0]) == 0) return map[i][1];
    switch (status) {
    case 400: case 413: case 422: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 429: return "rate_limit_exceeded";
    case 529: return "overloaded";
    default: return "server_error";
    }
}

/* The Messages API words a context overflow this way; OpenAI clients (and
 * the route's fallback rule) look for code context_length_exceeded. */
static bool context_overflow(const char *msg)
{
    return msg && (strncmp(msg, "prompt is too long", 18) == 0 ||
                   strstr(msg, "exceed context limit") != NULL);
}

int al_anth_error(int status, const char *body, size_t len, al_buf_t *out)
{
    yajl_val root = NULL, e;
    const char *type = NULL, *msg = NULL;
    char fallback[64];

    if (body && len && len <= ((size_t)1 << 20) && parse_tree(body, len, &root, NULL) == 0) {
        e = al_json_get(root, "error");
        if (YAJL_IS_OBJECT(e)) {
            type = jstr(e, "type");
            msg = jstr(e, "message");
        }
    }
    if (type && (!*type || strlen(type) > 64)) type = NULL;
    if (!msg || !*msg) {
        snprintf(fallback, sizeof fallback, "upstream error (HTTP %d)", status);
        msg = fallback;
    }
    al_buf_puts(out, "{\"error\":{\"message\":");
    al_buf_json_str(out, msg, utf8_cut(msg, MAX_ERR_MSG));
    al_buf_puts(out, ",\"type\":");
    put_str(out, map_error_type(type, status));
    al_buf_puts(out, ",\"param\":null,\"code\":");
    if (type && strcmp(type, "invalid_request_error") == 0 && context_overflow(msg))
        al_buf_puts(out, "\"context_length_exceeded\"");
    else if (type)
        put_str(out, type);
    else
        al_buf_puts(out, "null");
    al_buf_puts(out, "}}");
    if (root) yajl_tree_free(root);
    return out->err;
}

/* ---- streams ------------------------------------------------------------ */

void al_anth_stream_init(al_anth_stream_t *st, bool include_usage, int64_t created,
                         al_anth_emit_fn emit, void *ud)
{
    memset(st, 0, sizeof *st);
    st->emit = emit;
    st->ud = ud;
    st->include_usage = include_usage;
    st->created = created;
    st->tool_index = -1;
    st->block_index = -1;
    st->block_type = BLK_NONE;
}

static void chunk_begin(const al_anth_stream_t *st, al_buf_t *b)
{
    al_buf_puts(b, "{\"id\":");
    put_str(b, st->id);
    al_buf_printf(b, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                  (long long)st->created);
    put_str(b, st->model);
    al_buf_puts(b, ",\"system_fingerprint\":null,\"choices\":");
}

/* A one-choice chunk whose delta members are `delta` (already JSON). */
static int emit_delta(al_anth_stream_t *st, const al_buf_t *delta, const char *finish)
{
    al_buf_t b;
    int rc;
    al_buf_init(&b, (delta ? delta->len : 0) + 4096);
    chunk_begin(st, &b);
    al_buf_puts(&b, "[{\"index\":0,\"delta\":{");
    if (delta && delta->len) al_buf_append(&b, delta->p, delta->len);
    al_buf_puts(&b, "},\"logprobs\":null,\"finish_reason\":");
    if (finish)
        put_str(&b, finish);
    else
        al_buf_puts(&b, "null");
    al_buf_puts(&b, "}]");
    if (st->include_usage) al_buf_puts(&b, ",\"usage\":null");
    al_buf_putc(&b, '}');
    rc = b.err ? b.err : (delta && delta->err) ? delta->err : 0;
    if (rc == 0) {
        rc = st->emit ? st->emit(st->ud, b.p, b.len) : 0;
        if (rc > 0) rc = 0;
    }
    al_buf_free(&b);
    return rc;
}

static int emit_usage(al_anth_stream_t *st)
{
    al_buf_t b;
    int rc;
    al_buf_init(&b, 4096);
    chunk_begin(st, &b);
    al_buf_puts(&b, "[],\"usage\":");
    put_usage(&b, st->usage.input, st->usage.output, st->usage.cached, st->cache_creation);
    al_buf_putc(&b, '}');
    rc = b.err;
    if (rc == 0) {
        rc = st->emit ? st->emit(st->ud, b.p, b.len) : 0;
        if (rc > 0) rc = 0;
    }
    al_buf_free(&b);
    return rc;
}

/* Update the usage from an Anthropic usage object; members absent or null
 * keep their value (message_delta usage is cumulative and often partial). */
static void stream_usage(al_anth_stream_t *st, yajl_val u)
{
    int64_t cr = st->usage.cached, cc = st->cache_creation;
    int64_t in = st->usage.input - cr - cc;
    yajl_val v;
    if (!YAJL_IS_OBJECT(u)) return;
    if (!absent(v = al_json_get(u, "input_tokens"))) in = jcount(v);
    if (!absent(v = al_json_get(u, "cache_read_input_tokens"))) cr = jcount(v);
    if (!absent(v = al_json_get(u, "cache_creation_input_tokens"))) cc = jcount(v);
    if (!absent(v = al_json_get(u, "output_tokens"))) st->usage.output = jcount(v);
    if (in < 0) in = 0;
    st->usage.known = true;
    st->usage.cached = cr;
    st->cache_creation = cc;
    st->usage.input = sat_add(sat_add(in, cr), cc);
}

static int on_message_start(al_anth_stream_t *st, yajl_val root)
{
    yajl_val msg = al_json_get(root, "message");
    const char *model;
    al_buf_t d;
    int rc;
    if (!YAJL_IS_OBJECT(msg) || st->role_sent) return AL_EPARSE;
    make_id(st->id, sizeof st->id, jstr(msg, "id"));
    model = jstr(msg, "model");
    if (model) {
        size_t n = utf8_cut(model, sizeof st->model - 1);
        memcpy(st->model, model, n);
        st->model[n] = '\0';
    }
    stream_usage(st, al_json_get(msg, "usage"));
    st->role_sent = true;
    al_buf_init(&d, 256);
    al_buf_puts(&d, "\"role\":\"assistant\",\"content\":\"\",\"refusal\":null");
    rc = emit_delta(st, &d, NULL);
    al_buf_free(&d);
    return rc;
}

static int block_index(yajl_val root, int32_t *idx)
{
    yajl_val v = al_json_get(root, "index");
    if (!YAJL_IS_INTEGER(v) || v->u.number.i < 0 || v->u.number.i > INT32_MAX) return AL_EPARSE;
    *idx = (int32_t)v->u.number.i;
    return 0;
}

static int text_delta(al_anth_stream_t *st, const char *text)
{
    al_buf_t d;
    int rc;
    if (!*text) return 0;
    al_buf_init(&d, MAX_INPUT * 6 + 64);
    al_buf_puts(&d, "\"content\":");
    put_str(&d, text);
    rc = emit_delta(st, &d, NULL);
    al_buf_free(&d);
    return rc;
}

static int args_delta(al_anth_stream_t *st, const char *args, size_t len)
{
    al_buf_t d;
    int rc;
    al_buf_init(&d, MAX_INPUT * 6 + 128);
    al_buf_printf(&d, "\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":",
                  (int)st->tool_index);
    al_buf_json_str(&d, args, len);
    al_buf_puts(&d, "}}]");
    rc = emit_delta(st, &d, NULL);
    al_buf_free(&d);
    return rc;
}

static int on_block_start(al_anth_stream_t *st, yajl_val root)
{
    yajl_val cb = al_json_get(root, "content_block"), input;
    const char *t = jstr(cb, "type");
    int32_t idx;
    al_buf_t d;
    int rc;
    if (!st->role_sent || st->block_type != BLK_NONE || block_index(root, &idx) || !t)
        return AL_EPARSE;
    st->block_index = idx;
    if (strcmp(t, "text") == 0) {
        const char *text = jstr(cb, "text");
        st->block_type = BLK_TEXT;
        return text ? text_delta(st, text) : 0;
    }
    if (strcmp(t, "tool_use") != 0) {
        st->block_type = BLK_OTHER;   /* thinking, server tools: no OpenAI form */
        return 0;
    }
    const char *id = jstr(cb, "id"), *name = jstr(cb, "name");
    if (!id || !name || st->n_tools == INT32_MAX) return AL_EPARSE;
    st->block_type = BLK_TOOL;
    st->tool_index = st->n_tools++;
    input = al_json_get(cb, "input");
    /* The Messages API streams the input as input_json_delta after an empty
     * object; an input given whole here is sent at once instead. */
    st->input_given = YAJL_IS_OBJECT(input) && input->u.object.len > 0;
    st->args_sent = st->input_given;
    al_buf_init(&d, MAX_INPUT * 6 + 256);
    al_buf_printf(&d, "\"tool_calls\":[{\"index\":%d,\"id\":", (int)st->tool_index);
    put_str(&d, id);
    al_buf_puts(&d, ",\"type\":\"function\",\"function\":{\"name\":");
    put_str(&d, name);
    al_buf_puts(&d, ",\"arguments\":");
    if (st->input_given) {
        al_buf_t args;
        al_buf_init(&args, MAX_INPUT * 6);
        al_json_put(&args, input);
        al_buf_json_str(&d, args.p, args.len);
        if (args.err && !d.err) d.err = args.err;
        al_buf_free(&args);
    } else {
        al_buf_puts(&d, "\"\"");
    }
    al_buf_puts(&d, "}}]");
    rc = emit_delta(st, &d, NULL);
    al_buf_free(&d);
    return rc;
}

static int on_block_delta(al_anth_stream_t *st, yajl_val root)
{
    yajl_val delta = al_json_get(root, "delta");
    const char *dt = jstr(delta, "type");
    int32_t idx;
    if (st->block_type == BLK_NONE || block_index(root, &idx) || idx != st->block_index || !dt)
        return AL_EPARSE;
    if (strcmp(dt, "text_delta") == 0) {
        const char *text = jstr(delta, "text");
        if (st->block_type != BLK_TEXT || !text) return AL_EPARSE;
        return text_delta(st, text);
    }
    if (strcmp(dt, "input_json_delta") == 0) {
        const char *pj = jstr(delta, "partial_json");
        if (st->block_type != BLK_TOOL || !pj) return AL_EPARSE;
        if (st->input_given || !*pj) return 0;
        st->args_sent = true;
        return args_delta(st, pj, strlen(pj));
    }
    return 0;   /* thinking_delta, signature_delta, citations_delta, ... */
}

static int on_block_stop(al_anth_stream_t *st, yajl_val root)
{
    int32_t idx;
    int rc = 0;
    if (st->block_type == BLK_NONE || block_index(root, &idx) || idx != st->block_index)
        return AL_EPARSE;
    /* a tool without arguments: "{}" as OpenAI sends, so clients can parse it */
    if (st->block_type == BLK_TOOL && !st->args_sent) rc = args_delta(st, "{}", 2);
    st->block_type = BLK_NONE;
    st->block_index = -1;
    st->args_sent = st->input_given = false;
    return rc;
}

static int send_finish(al_anth_stream_t *st, const char *reason)
{
    size_t n = strlen(reason);
    if (st->finish_sent) return 0;
    if (n >= sizeof st->finish_reason) n = sizeof st->finish_reason - 1;
    memcpy(st->finish_reason, reason, n);
    st->finish_reason[n] = '\0';
    st->finish_sent = true;
    return emit_delta(st, NULL, st->finish_reason);
}

static int on_message_delta(al_anth_stream_t *st, yajl_val root)
{
    yajl_val delta = al_json_get(root, "delta"), sr;
    if (!st->role_sent || (!absent(delta) && !YAJL_IS_OBJECT(delta))) return AL_EPARSE;
    stream_usage(st, al_json_get(root, "usage"));
    sr = al_json_get(delta, "stop_reason");
    if (YAJL_IS_STRING(sr)) return send_finish(st, finish_reason(sr->u.string));
    return 0;
}

static int on_message_stop(al_anth_stream_t *st)
{
    int rc;
    if (!st->role_sent) return AL_EPARSE;
    if ((rc = send_finish(st, "stop")) != 0) return rc;
    if (st->include_usage && (rc = emit_usage(st)) != 0) return rc;
    st->done = true;
    return AL_ANTH_STREAM_DONE;
}

int al_anth_stream_event(al_anth_stream_t *st, const char *event, size_t elen, const char *data,
                         size_t dlen, al_buf_t *errbuf)
{
    yajl_val root = NULL;
    const char *type;
    char ev[32];
    int rc;

    if (!event) elen = 0;
    if (elen && elen < sizeof ev) {
        memcpy(ev, event, elen);
        ev[elen] = '\0';
    } else {
        ev[0] = '\0';
    }
    if (dlen == 0 && strcmp(ev, "ping") == 0) return 0;
    if (parse_tree(data, dlen, &root, NULL) != 0 || !YAJL_IS_OBJECT(root)) {
        rc = AL_EPARSE;
        goto out;
    }
    type = jstr(root, "type");
    if (!type) type = ev;
    if (!*type || (elen && (strlen(type) != elen || memcmp(type, event, elen) != 0))) {
        rc = AL_EPARSE;
        goto out;
    }
    if (strcmp(type, "ping") == 0) {
        rc = 0;
    } else if (strcmp(type, "error") == 0) {
        if (errbuf) {
            int e = al_anth_error(500, data, dlen, errbuf);
            AL_UNUSED(e);
        }
        rc = AL_EIO;
    } else if (st->done) {
        rc = AL_EPARSE;   /* nothing may follow message_stop */
    } else if (strcmp(type, "message_start") == 0) {
        rc = on_message_start(st, root);
    } else if (strcmp(type, "content_block_start") == 0) {
        rc = on_block_start(st, root);
    } else if (strcmp(type, "content_block_delta") == 0) {
        rc = on_block_delta(st, root);
    } else if (strcmp(type, "content_block_stop") == 0) {
        rc = on_block_stop(st, root);
    } else if (strcmp(type, "message_delta") == 0) {
        rc = on_message_delta(st, root);
    } else if (strcmp(type, "message_stop") == 0) {
        rc = on_message_stop(st);
    } else {
        rc = 0;   /* new event types are to be ignored, per the Messages API */
    }
out:
    if (root) yajl_tree_free(root);
    return rc;
}
