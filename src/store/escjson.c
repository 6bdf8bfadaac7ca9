/* escjson.c - escalations as JSON (see escjson.h). */
#include "store/escjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>


static void put_str(al_buf_t *b, const char *key, const char *v, size_t fieldsz)
{
    al_buf_printf(b, ",\"%s\":", key);
    al_buf_json_str(b, v, strnlen(v, fieldsz));
}

static void put_str_or_null(al_buf_t *b, const char *key, const char *v, size_t fieldsz)
{
    if (v && v[0]) put_str(b, key, v, fieldsz);
    else al_buf_printf(b, ",\"%s\":null", key);
}

static void put_secs(al_buf_t *b, const char *key, int64_t ms)
{
    if (ms > 0) al_buf_printf(b, ",\"%s\":%" PRId64, key, ms / 1000);
    else al_buf_printf(b, ",\"%s\":null", key);
}

void al_esc_completion_json(al_buf_t *b, const char *esc_id, const char *answer, int64_t created_s)
{
    al_buf_puts(b, "{\"id\":");
    char cid[64];
    snprintf(cid, sizeof cid, "chatcmpl-%s", esc_id);
    al_buf_json_str(b, cid, strlen(cid));
    al_buf_printf(b, ",\"object\":\"chat.completion\",\"created\":%" PRId64
                     ",\"model\":\"human\",\"choices\":[{\"index\":0,\"message\":"
                     "{\"role\":\"assistant\",\"content\":",
                  created_s);
    al_buf_json_str(b, answer ? answer : "", answer ? strlen(answer) : 0);
    al_buf_puts(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                   "\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,"
                   "\"total_tokens\":0}}");
}

static void put_completion(al_buf_t *b, const al_esc_row_t *r)
{
    if (strcmp(r->status, "resolved") != 0 || !r->answer) {
        al_buf_puts(b, ",\"completion\":null");
        return;
    }
    al_buf_puts(b, ",\"completion\":");
    al_esc_completion_json(b, r->id, r->answer,
                           (r->resolved_ms > 0 ? r->resolved_ms : r->created_ms) / 1000);
}

/* The stored attempts array as is when it is a valid JSON array, else []
 * (the gateway writes it, but the database is not ours alone, and a line of
 * --json output must stay valid JSON). */
static void put_attempts(al_buf_t *b, const al_esc_row_t *r)
{
    size_t n = strnlen(r->attempts, sizeof r->attempts);
    al_buf_puts(b, ",\"attempts\":");
    if (n == 0 || r->attempts[0] != '[') {
        al_buf_puts(b, "[]");
        return;
    }
    char *copy = al_strndup(r->attempts, n);
    yajl_val v = yajl_tree_parse(copy, NULL, 0);
    if (v && YAJL_IS_ARRAY(v)) al_buf_append(b, r->attempts, n);
    else al_buf_puts(b, "[]");
    yajl_tree_free(v);
    free(copy);
}

int al_esc_json(al_buf_t *b, const al_esc_row_t *r, bool admin, bool with_request)
{
    al_buf_puts(b, "{\"id\":");
    al_buf_json_str(b, r->id, strnlen(r->id, sizeof r->id));
    al_buf_puts(b, ",\"object\":\"escalation\"");
    put_str(b, "status", r->status, sizeof r->status);
    put_str(b, "reason", r->reason, sizeof r->reason);
    put_secs(b, "created_at", r->created_ms);
    put_secs(b, "resolved_at", r->resolved_ms);
    if (r->answer) {
        al_buf_puts(b, ",\"answer\":");
        al_buf_json_str(b, r->answer, strlen(r->answer));
    } else {
        al_buf_puts(b, ",\"answer\":null");
    }
    put_completion(b, r);
    put_secs(b, "expires_at", r->expires_ms);
    put_str(b, "agent", r->agent, sizeof r->agent);
    if (admin) put_str_or_null(b, "key_id", r->key_id, sizeof r->key_id);
    put_str_or_null(b, "route", r->route, sizeof r->route);
    put_str(b, "model", r->model, sizeof r->model);
    put_str_or_null(b, "request_id", r->request_id, sizeof r->request_id);
    if (admin) put_str_or_null(b, "event_id", r->event_id, sizeof r->event_id);
    put_str(b, "mode", r->mode, sizeof r->mode);
    al_buf_printf(b, ",\"stream\":%s", r->stream ? "true" : "false");
    if (admin) put_str_or_null(b, "resolved_by", r->resolved_by, sizeof r->resolved_by);
    put_attempts(b, r);
    if (with_request) {
        if (r->request) {
            al_buf_puts(b, ",\"request\":");
            al_buf_json_str(b, r->request, strlen(r->request));
        } else {
            al_buf_puts(b, ",\"request\":null");
        }
    }
    al_buf_putc(b, '}');
    return b->err ? AL_ETOOBIG : AL_OK;
}

