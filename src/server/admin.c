/* admin.c - the admin API under /admin/v1 on the admin listener.
 *
 * Every call carries an admin token (Authorization: Bearer adm_...), looked
 * up by its SHA-256 in the store; the token's role decides what it may do
 * (401 without a live token, 403 when the role may not).  Store calls block,
 * so the whole call (authentication included) runs as one libuv thread-pool
 * job and the control loop only parses the request and sends the answer.
 * Changes (resolving an escalation) are events naming the token.
 *
 *   GET  /admin/v1/status                      any role
 *   GET  /admin/v1/escalations[?status=&agent=&limit=]   any role
 *   GET  /admin/v1/escalations/ID              any role
 *   POST /admin/v1/escalations/ID/resolve      admin, operator
 *        {"answer": "text"} or {"reject": "reason"} */
#include "pipeline/ctx.h"
#include "policy/keys.h"
#include "store/escjson.h"
#include "util/json.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define ADMIN_BODY_MAX (8 << 20) /* an answer of 1 MiB, JSON-escaped */
#define ANSWER_MAX (1 << 20)

typedef enum { A_STATUS, A_ESC_LIST, A_ESC_GET, A_ESC_RESOLVE } op_t;

typedef struct admin_job {
    uv_work_t work;
    al_gateway_t *gw;
    al_http_req_t *req;          /* NULL once the client left */
    op_t op;
    uint8_t hash[32];
    bool have_token;
    char id[40];
    char status_filter[16];
    char agent_filter[64];
    uint32_t limit;
    char *body;                  /* resolve: the request body (NUL-terminated copy) */
    size_t body_len;
    char *answer;                /* resolve: the text */
    bool reject;
    /* results */
    int status;
    al_buf_t out;
    char request_id[129];
} admin_job_t;

static void respond(al_http_req_t *req, const char *request_id, int status, const char *body,
                    size_t len)
{
    char rid[160];
    snprintf(rid, sizeof rid, "X-Request-Id: %s", request_id);
    const char *h[] = {rid};
    al_http_respond(req, status, "application/json", h, 1, body, len);
}

static void job_error(admin_job_t *j, int status, const char *type, const char *code,
                      const char *msg)
{
    j->status = status;
    al_buf_reset(&j->out);
    al_http_error_json(&j->out, type, code, msg);
}

static bool role_in(const char *role, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(role, *allowed) == 0) return true;
    return false;
}

/* Parse {"answer": "..."} or {"reject": "..."}. */
static bool parse_resolve(admin_job_t *j, char *err, size_t errlen)
{
    if (!j->body || j->body_len == 0 || j->body_len > ADMIN_BODY_MAX ||
        al_json_depth(j->body, j->body_len) > 16) {
        snprintf(err, errlen, "send a JSON object with \"answer\" or \"reject\"");
        return false;
    }
    char perr[128];
    yajl_val root = yajl_tree_parse(j->body, perr, sizeof perr);
    bool ok = false;
    if (!root || !YAJL_IS_OBJECT(root)) {
        snprintf(err, errlen, "the body must be a JSON object");
        goto out;
    }
    const char *pa[] = {"answer", NULL}, *pr[] = {"reject", NULL};
    yajl_val a = yajl_tree_get(root, pa, yajl_t_any);
    yajl_val r = yajl_tree_get(root, pr, yajl_t_any);
    if ((a != NULL) == (r != NULL)) {
        snprintf(err, errlen, "give exactly one of \"answer\" and \"reject\"");
        goto out;
    }
    yajl_val v = a ? a : r;
    const char *sv = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    if (!sv || strlen(sv) > ANSWER_MAX) {
        snprintf(err, errlen, "\"%s\" must be a string of at most 1 MiB", a ? "answer" : "reject");
        goto out;
    }
    j->answer = al_strdup(sv);
    j->reject = r != NULL;
    ok = true;
out:
    if (root) yajl_tree_free(root);
    return ok;
}

/* --- the work, on a pool thread ------------------------------------------ */

typedef struct list_ctx {
    al_buf_t *out;
    bool first;
    uint64_t n;
} list_ctx_t;

static int list_cb(void *ud, const al_esc_row_t *r)
{
    list_ctx_t *l = ud;
    if (!l->first) al_buf_putc(l->out, ',');
    l->first = false;
    l->n++;
    al_esc_json(l->out, r, true, false);
    return l->out->err ? 1 : 0;
}

static int count_cb(void *ud, const al_esc_row_t *r)
{
    (void)r;
    (*(uint64_t *)ud)++;
    return 0;
}

typedef struct status_ctx {
    al_buf_t *out;
    bool first;
} status_ctx_t;

static void breaker_cb(void *ud, const al_breaker_info_t *in)
{
    status_ctx_t *s = ud;
    const char *slash = strchr(in->key, '/');
    size_t rl = slash ? (size_t)(slash - in->key) : strlen(in->key);
    const char *target = slash ? slash + 1 : "";
    if (!s->first) al_buf_putc(s->out, ',');
    s->first = false;
    al_buf_puts(s->out, "{\"route\":");
    al_buf_json_str(s->out, in->key, rl);
    al_buf_puts(s->out, ",\"target\":");
    al_buf_json_str(s->out, target, strlen(target));
    al_buf_printf(s->out,
                  ",\"state\":\"%s\",\"window_requests\":%u,\"window_failures\":%u,"
                  "\"consecutive_failures\":%u,\"opened_total\":%llu,\"open_until\":",
                  al_breaker_state_name(in->state), in->window_requests, in->window_failures,
                  in->consecutive_failures, (unsigned long long)in->opened_total);
    if (in->open_until_ms > 0) al_buf_printf(s->out, "%lld", (long long)(in->open_until_ms / 1000));
    else al_buf_puts(s->out, "null");
    if (in->ewma_latency_ms >= 0) al_buf_printf(s->out, ",\"ewma_latency_ms\":%.1f}", in->ewma_latency_ms);
    else al_buf_puts(s->out, ",\"ewma_latency_ms\":null}");
}

static void do_status(admin_job_t *j)
{
    al_gateway_t *gw = j->gw;
    unsigned inflight = 0;
    for (unsigned i = 0; i < gw->n_workers; i++) inflight += atomic_load(&gw->workers[i].inflight);
    uint64_t open = 0;
    al_esc_filter_t f = {.status = "open"};
    al_store_esc_each(gw->store, &f, count_cb, &open);
    al_buf_printf(&j->out,
                  "{\"version\":\"%s\",\"workers\":%u,\"inflight\":%u,\"escalations_open\":%llu,"
                  "\"breakers\":[",
                  AL_VERSION, gw->n_workers, inflight, (unsigned long long)open);
    status_ctx_t s = {&j->out, true};
    al_breaker_each(gw->breakers, breaker_cb, &s);
    al_buf_puts(&j->out, "]}");
    j->status = 200;
}

static void do_resolve(admin_job_t *j, const al_admin_token_row_t *tok)
{
    al_store_t *st = j->gw->store;
    char actor[96];
    snprintf(actor, sizeof actor, "admin:%s", tok->id);
    int64_t now = al_wall_ms();
    int rc = al_store_esc_close(st, j->id, j->reject ? "rejected" : "resolved", j->answer, actor,
                                now);
    al_esc_row_t r;
    if (rc == AL_ENOTFOUND) {
        job_error(j, 404, "not_found", "escalation_not_found", "no such escalation");
        return;
    }
    if (rc == AL_ESTATE) {
        char msg[96] = "the escalation is no longer open";
        if (al_store_esc_get(st, j->id, &r) == AL_OK) {
            snprintf(msg, sizeof msg, "the escalation is already %s", r.status);
            al_esc_row_free(&r);
        }
        job_error(j, 409, "conflict", "escalation_closed", msg);
        return;
    }
    if (rc != AL_OK || al_store_esc_get(st, j->id, &r) != AL_OK) {
        job_error(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    al_event_t e;
    al_event_init(&e);
    e.ts_ms = now;
    const char *kind = j->reject ? "escalation.rejected" : "escalation.resolved";
    AL_EVENT_SET(&e, kind, kind, strlen(kind));
    AL_EVENT_SET(&e, actor, actor, strlen(actor));
    AL_EVENT_SET(&e, escalation_id, r.id, strlen(r.id));
    AL_EVENT_SET(&e, agent, r.agent, strlen(r.agent));
    AL_EVENT_SET(&e, route, r.route, strlen(r.route));
    AL_EVENT_SET(&e, method, "POST", 4);
    AL_EVENT_SET(&e, path, "/admin/v1/escalations/resolve", 29);
    AL_EVENT_SET(&e, request_id, j->request_id, strlen(j->request_id));
    AL_EVENT_SET(&e, outcome, "ok", 2);
    e.status = 200;
    al_store_event_insert(st, &e);
    if (j->gw->alerts) {
        al_alert_field_t f[] = {{"escalation", r.id}, {"agent", r.agent}, {"by", actor},
                                {"status", r.status}};
        al_alerts_post(j->gw->alerts, kind, "airlock: an escalation was answered", "good", f, 4);
    }
    al_esc_json(&j->out, &r, true, true);
    al_esc_row_free(&r);
    j->status = 200;
}

static void job_work(uv_work_t *wk)
{
    admin_job_t *j = wk->data;
    al_admin_token_row_t tok;
    if (!j->have_token ||
        al_store_admin_token_find(j->gw->store, j->hash, al_wall_ms(), &tok) != AL_OK) {
        job_error(j, 401, "authentication_error", "invalid_admin_token",
                  "missing or invalid admin token: send Authorization: Bearer <admin token>");
        return;
    }
    static const char *const resolvers[] = {"admin", "operator", NULL};
    switch (j->op) {
    case A_STATUS:
        do_status(j);
        break;
    case A_ESC_LIST: {
        al_esc_filter_t f = {.status = j->status_filter[0] ? j->status_filter : NULL,
                             .agent = j->agent_filter[0] ? j->agent_filter : NULL,
                             .limit = j->limit};
        if (strcmp(tok.role, "owner") == 0) f.agent = tok.agent;
        list_ctx_t l = {&j->out, true, 0};
        al_buf_puts(&j->out, "{\"object\":\"list\",\"data\":[");
        if (al_store_esc_each(j->gw->store, &f, list_cb, &l) != AL_OK) {
            job_error(j, 500, "server_error", "store_error", "the store failed");
            return;
        }
        al_buf_puts(&j->out, "]}");
        j->status = 200;
        break;
    }
    case A_ESC_GET: {
        al_esc_row_t r;
        if (al_store_esc_get(j->gw->store, j->id, &r) != AL_OK) {
            job_error(j, 404, "not_found", "escalation_not_found", "no such escalation");
            return;
        }
        if (strcmp(tok.role, "owner") == 0 && strcmp(tok.agent, r.agent) != 0) {
            al_esc_row_free(&r);
            job_error(j, 404, "not_found", "escalation_not_found", "no such escalation");
            return;
        }
        al_esc_json(&j->out, &r, true, true);
        al_esc_row_free(&r);
        j->status = 200;
        break;
    }
    case A_ESC_RESOLVE:
        if (!role_in(tok.role, resolvers)) {
            job_error(j, 403, "permission_denied", "role_not_allowed",
                      "this admin token's role may not resolve escalations");
            return;
        }
        {
            char err[128];
            if (!parse_resolve(j, err, sizeof err)) {
                job_error(j, 400, "invalid_request_error", "invalid_body", err);
                return;
            }
        }
        do_resolve(j, &tok);
        break;
    }
    if (j->out.err) job_error(j, 500, "server_error", "too_big", "the answer is too large");
}

/* --- the control loop side ----------------------------------------------- */

static void on_abort(al_http_req_t *req)
{
    admin_job_t *j = req->ud;
    j->req = NULL;
}

static void job_after(uv_work_t *wk, int status)
{
    admin_job_t *j = wk->data;
    (void)status;
    if (j->req) {
        j->req->on_abort = NULL;
        respond(j->req, j->request_id, j->status, j->out.p ? j->out.p : "{}",
                j->out.p ? j->out.len : 2);
    }
    al_buf_free(&j->out);
    free(j->answer);
    free(j->body);
    free(j);
}

/* Query parameter NAME of the request's query string into out. */
static void query_param(const al_http_req_t *req, const char *name, char *out, size_t outsz)
{
    out[0] = '\0';
    const char *q = req->query;
    if (!q) return;
    size_t nl = strlen(name);
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t vl = AL_MIN(len - nl - 1, outsz - 1);
            memcpy(out, q + nl + 1, vl);
            out[vl] = '\0';
            return;
        }
        if (!amp) return;
        q = amp + 1;
    }
}

void al_admin_handle(al_gateway_t *gw, al_http_req_t *req)
{
    char request_id[129];
    al_http_request_id(req, request_id);
    const char *p = req->path;
    op_t op;
    char id[40] = "";
    bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    bool post = req->method == HTTP_POST;
    if (strcmp(p, "/admin/v1/status") == 0 && get) {
        op = A_STATUS;
    } else if (strcmp(p, "/admin/v1/escalations") == 0 && get) {
        op = A_ESC_LIST;
    } else if (strncmp(p, "/admin/v1/escalations/", 22) == 0) {
        const char *rest = p + 22;
        const char *slash = strchr(rest, '/');
        size_t il = slash ? (size_t)(slash - rest) : strlen(rest);
        if (il == 0 || il >= sizeof id) goto not_found;
        memcpy(id, rest, il);
        id[il] = '\0';
        if (!slash && get) op = A_ESC_GET;
        else if (slash && strcmp(slash, "/resolve") == 0 && post) op = A_ESC_RESOLVE;
        else if (slash && strcmp(slash, "/resolve") == 0) goto not_allowed;
        else if (!slash) goto not_allowed;
        else goto not_found;
    } else if (strcmp(p, "/admin/v1/status") == 0 || strcmp(p, "/admin/v1/escalations") == 0) {
        goto not_allowed;
    } else {
        goto not_found;
    }

    admin_job_t *j = al_calloc(1, sizeof *j);
    j->gw = gw;
    j->req = req;
    j->op = op;
    snprintf(j->request_id, sizeof j->request_id, "%s", request_id);
    snprintf(j->id, sizeof j->id, "%s", id);
    al_buf_init(&j->out, 64 << 20);
    const al_http_hdr_t *h = al_http_header(req, "authorization");
    if (h && h->value_len > 7 && al_mem_ieq(h->value, 7, "bearer ", 7)) {
        al_key_hash(h->value + 7, h->value_len - 7, j->hash);
        j->have_token = true;
    }
    if (op == A_ESC_LIST) {
        char lim[16];
        query_param(req, "status", j->status_filter, sizeof j->status_filter);
        if (strcmp(j->status_filter, "all") == 0) j->status_filter[0] = '\0';
        query_param(req, "agent", j->agent_filter, sizeof j->agent_filter);
        query_param(req, "limit", lim, sizeof lim);
        uint64_t v = 100;
        if (lim[0] && (al_parse_u64(lim, strlen(lim), &v) != AL_OK || v > 100000)) v = 100;
        j->limit = (uint32_t)v;
    }
    if (op == A_ESC_RESOLVE && req->body.len <= ADMIN_BODY_MAX) {
        /* Parsed by the job, after the token is checked. */
        j->body = al_malloc(req->body.len + 1);
        memcpy(j->body, req->body.p, req->body.len);
        j->body[req->body.len] = '\0';
        j->body_len = req->body.len;
    }
    j->work.data = j;
    req->ud = j;
    req->on_abort = on_abort;
    if (uv_queue_work(gw->loop, &j->work, job_work, job_after) != 0) {
        req->on_abort = NULL;
        al_buf_free(&j->out);
        free(j->body);
        free(j);
        goto busy;
    }
    return;

not_found: {
    char rid[160];
    snprintf(rid, sizeof rid, "X-Request-Id: %s", request_id);
    const char *hh[] = {rid};
    al_http_respond_error(req, 404, "invalid_request_error", "unknown_url", "unknown path", hh, 1);
    return;
}
not_allowed: {
    char rid[160];
    snprintf(rid, sizeof rid, "X-Request-Id: %s", request_id);
    const char *hh[] = {rid};
    al_http_respond_error(req, 405, "invalid_request_error", "method_not_allowed",
                          "method not allowed on this path", hh, 1);
    return;
}
busy: {
    char rid[160];
    snprintf(rid, sizeof rid, "X-Request-Id: %s", request_id);
    const char *hh[] = {rid, "Retry-After: 1"};
    al_http_respond_error(req, 503, "overloaded", "busy", "retry shortly", hh, 2);
}
}
