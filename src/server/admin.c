/* admin.c - the admin API under /admin/v1 on the admin listener: routing,
 * authentication, the role matrix and the job that runs each call.
 *
 * Every call carries an admin token (Authorization: Bearer adm_...), looked
 * up by its SHA-256 in the store.  Store calls block, so the whole call runs
 * as one libuv thread-pool job and the control loop only copies the request
 * (method, path segments, query, body) and later sends the answer.  Inside
 * the job the order is fixed: 401 for a missing/unknown/revoked/expired
 * token before anything else (unknown paths and methods included), then the
 * role matrix (403; an owner token acts only on its own agent), then the
 * query or body (400 naming the field), then the work.  The configuration
 * snapshot is referenced once per job under gw->lock.  Every change writes an
 * event with actor "admin:TOKEN_ID", the request id and a JSON detail.
 * Answers that carry a secret (a new key, a minted token) are zeroed once
 * sent.
 *
 *   GET  /admin/v1/status                          every role
 *   GET  /admin/v1/agents[/A[/permissions]]        reads; owner: its agent
 *   POST /admin/v1/agents/A/tokens                 admin, owner of A
 *   GET  /admin/v1/keys?agent=A                    reads; owner: its agent
 *   POST /admin/v1/keys, /admin/v1/keys/ID/revoke  admin, owner (its agent)
 *   GET  /admin/v1/kill                            reads (not owner)
 *   POST /admin/v1/kill, /admin/v1/unkill          admin, operator
 *   GET  /admin/v1/events?agent=&kind=&since_ms=&until_ms=&limit=  admin, auditor
 *   GET  /admin/v1/escalations[?status=&agent=&limit=], /escalations/ID
 *                                                  reads; owner: its agent
 *   POST /admin/v1/escalations/ID/resolve          admin, operator
 *        {"answer": "text"} or {"reject": "reason"}
 *   GET  /admin/v1/audit/records/SEQ               admin, auditor: the record and
 *        its decrypted payload (what `airlock audit show` prints)
 *   GET  /admin/v1/audit/checkpoint                reads: the latest signed checkpoint */
#include "audit/verify.h"
#include "pipeline/ctx.h"
#include "policy/inventory.h"
#include "policy/token.h"
#include "store/escjson.h"
#include "util/json.h"
#include "util/log.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_BODY_MAX (8 << 20) /* resolve: an answer of 1 MiB, JSON-escaped */
#define SMALL_BODY_MAX (64 << 10) /* every other body */
#define ANSWER_MAX (1 << 20)

typedef enum {
    A_STATUS, A_AGENTS, A_AGENT, A_PERMS, A_TOKEN_MINT, A_KEYS_LIST, A_KEY_CREATE,
    A_KEY_REVOKE, A_KILL_LIST, A_KILL_SET, A_KILL_CLEAR, A_EVENTS, A_ESC_LIST, A_ESC_GET,
    A_ESC_RESOLVE, A_AUDIT_SHOW, A_AUDIT_CP,
    A__N,
    A_NOT_FOUND = A__N, /* answered after authentication too */
    A_NOT_ALLOWED,
} op_t;

typedef struct job {
    uv_work_t work;
    al_gateway_t *gw;
    al_http_req_t *req;          /* NULL once the client left */
    op_t op;
    char allow[24];              /* methods of the matched path, for 405 */
    char seg[160];               /* the path's name or id, decoded */
    char method[8], path[64];    /* for events */
    char *query;                 /* copy of the query string */
    char *body;                  /* POST body (NUL-terminated copy) or NULL */
    size_t body_len;
    bool body_too_big;
    uint8_t hash[32];
    bool have_token;
    /* in the job */
    al_admin_token_row_t tok;
    char actor[48];              /* "admin:" + token id */
    al_config_t *cfg;            /* snapshot, referenced for the job */
    char *answer;                /* resolve: the text */
    bool reject;
    /* results */
    int status;
    al_buf_t out;
    bool secret;                 /* out holds a key or token: zero it when sent */
    char request_id[129];
} job_t;

/* For tests (tests/unit/test_admin.c): may a token of this role (owning
 * owner_agent when "owner") do op (its name in op_tab, e.g. "kill.set") on
 * target_agent (NULL when the call is about no single agent)? */
bool al__admin_allowed(const char *role, const char *op, const char *owner_agent,
                       const char *target_agent);

/* --- the role matrix --------------------------------------------------------- */

enum { R_ADMIN = 1, R_OPERATOR = 2, R_AUDITOR = 4, R_VIEWER = 8, R_OWNER = 16 };
#define R_READS (R_ADMIN | R_OPERATOR | R_AUDITOR | R_VIEWER)

static const struct {
    const char *name;
    unsigned roles;
    bool scoped;    /* an owner may only for its own agent */
} op_tab[A__N] = {
    [A_STATUS] = {"status", R_READS | R_OWNER, false},
    [A_AGENTS] = {"agents.list", R_READS | R_OWNER, true},
    [A_AGENT] = {"agents.get", R_READS | R_OWNER, true},
    [A_PERMS] = {"agents.permissions", R_READS | R_OWNER, true},
    [A_TOKEN_MINT] = {"tokens.mint", R_ADMIN | R_OWNER, true},
    [A_KEYS_LIST] = {"keys.list", R_READS | R_OWNER, true},
    [A_KEY_CREATE] = {"keys.create", R_ADMIN | R_OWNER, true},
    [A_KEY_REVOKE] = {"keys.revoke", R_ADMIN | R_OWNER, true},
    [A_KILL_LIST] = {"kill.list", R_READS, false},
    [A_KILL_SET] = {"kill.set", R_ADMIN | R_OPERATOR, false},
    [A_KILL_CLEAR] = {"kill.clear", R_ADMIN | R_OPERATOR, false},
    [A_EVENTS] = {"events.list", R_ADMIN | R_AUDITOR, false},
    [A_ESC_LIST] = {"escalations.list", R_READS | R_OWNER, true},
    [A_ESC_GET] = {"escalations.get", R_READS | R_OWNER, true},
    [A_ESC_RESOLVE] = {"escalations.resolve", R_ADMIN | R_OPERATOR, false},
    [A_AUDIT_SHOW] = {"audit.show", R_ADMIN | R_AUDITOR, false},
    [A_AUDIT_CP] = {"audit.checkpoint", R_READS, false},
};

static unsigned role_bit(const char *role)
{
    static const char *const names[] = {"admin", "operator", "auditor", "viewer", "owner"};
    for (unsigned i = 0; role && i < AL_ARRAY_LEN(names); i++)
        if (strcmp(role, names[i]) == 0) return 1u << i;
    return 0;
}

static bool may(const char *role, op_t op, const char *owner_agent, const char *target_agent)
{
    if ((unsigned)op >= A__N) return false;
    unsigned bit = role_bit(role);
    if (!(op_tab[op].roles & bit)) return false;
    if (bit != R_OWNER || !op_tab[op].scoped) return true;
    return owner_agent && owner_agent[0] && target_agent && strcmp(owner_agent, target_agent) == 0;
}

bool al__admin_allowed(const char *role, const char *op, const char *owner_agent,
                       const char *target_agent)
{
    for (int i = 0; op && i < A__N; i++)
        if (strcmp(op_tab[i].name, op) == 0)
            return may(role, (op_t)i, owner_agent, target_agent);
    return false;
}


/* --- shared helpers for the handlers --------------------------------------- */

static void jerr(job_t *j, int status, const char *type, const char *code,
                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->status = status;
    if (j->secret && j->out.p) explicit_bzero(j->out.p, j->out.len);
    j->secret = false;
    al_buf_reset(&j->out);
    al_http_error_json(&j->out, type, code, msg);
}

static bool check(job_t *j, const char *target_agent)
{
    const al_admin_token_row_t *t = &j->tok;
    if (may(t->role, j->op, t->agent, target_agent)) return true;
    if (strcmp(t->role, "owner") == 0 && (op_tab[j->op].roles & R_OWNER))
        jerr(j, 403, "permission_denied", "not_your_agent",
             "this owner token acts only on agent '%s'", t->agent);
    else
        jerr(j, 403, "permission_denied", "role_not_allowed",
             "role '%s' may not %s", t->role, op_tab[j->op].name);
    return false;
}

static bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* Percent-decode p/len into out (NUL-terminated); '+' is a space when
 * plus_space.  False on a bad escape, a control character or no room. */
static bool url_decode(const char *p, size_t len, bool plus_space, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            int v = 0;
            if (len - i < 3) return false;
            for (int k = 1; k <= 2; k++) {
                char h = p[i + (size_t)k];
                int d = h >= '0' && h <= '9' ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0) return false;
                v = v * 16 + d;
            }
            c = (unsigned char)v;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (is_ctl(c) || o + 1 >= outsz) return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

static int qparam(const job_t *j, const char *name, char *out, size_t outsz)
{
    out[0] = '\0';
    const char *q = j->query;
    size_t nl = strlen(name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len >= nl && memcmp(q, name, nl) == 0 && (len == nl || q[nl] == '=')) {
            size_t vo = len == nl ? len : nl + 1;
            return url_decode(q + vo, len - vo, true, out, outsz) ? 1 : -1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

static int qparam_i64(job_t *j, const char *name, int64_t lo, int64_t hi, int64_t *v)
{
    char s[24];
    uint64_t u = 0;
    int rc = qparam(j, name, s, sizeof s);
    if (rc == 0 || (rc == 1 && !s[0])) return 0;
    if (rc < 0 || al_parse_u64(s, strlen(s), &u) != AL_OK || u > (uint64_t)INT64_MAX ||
        (int64_t)u < lo || (int64_t)u > hi) {
        jerr(j, 400, "invalid_request_error", "invalid_parameter",
             "query parameter '%s' must be a whole number from %lld to %lld", name,
             (long long)lo, (long long)hi);
        return -1;
    }
    *v = (int64_t)u;
    return 1;
}

static int qparam_name(job_t *j, const char *name, char *out, size_t outsz)
{
    int rc = qparam(j, name, out, outsz);
    if (rc < 0) {
        jerr(j, 400, "invalid_request_error", "invalid_parameter",
             "query parameter '%s' must be at most %zu bytes without control "
             "characters", name, outsz - 1);
        return -1;
    }
    return rc == 1 && out[0] ? 1 : 0;
}

static yajl_val parse_body(job_t *j, const char *const *known)
{
    char perr[128];
    if (j->body_too_big) {
        jerr(j, 413, "invalid_request_error", "request_too_large",
             "the body is larger than %u bytes",
             j->op == A_ESC_RESOLVE ? ADMIN_BODY_MAX : SMALL_BODY_MAX);
        return NULL;
    }
    const char *text = j->body_len ? j->body : "{}";
    size_t len = j->body_len ? j->body_len : 2;
    if (memchr(text, '\0', len) || al_json_depth(text, len) > 16) goto bad;
    yajl_val root = yajl_tree_parse(text, perr, sizeof perr);
    if (!root || !YAJL_IS_OBJECT(root)) {
        if (root) yajl_tree_free(root);
        goto bad;
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        bool ok = false;
        for (size_t n = 0; known[n] && !ok; n++) ok = strcmp(known[n], k) == 0;
        for (size_t p = 0; p < i && ok; p++) ok = strcmp(root->u.object.keys[p], k) != 0;
        if (!ok) {
            char name[64];
            snprintf(name, sizeof name, "%s", k);
            for (char *c = name; *c; c++)
                if (is_ctl((unsigned char)*c) || *c == '"') *c = '?';
            jerr(j, 400, "invalid_request_error", "invalid_field",
                 "field \"%s\" is unknown or repeated", name);
            yajl_tree_free(root);
            return NULL;
        }
    }
    return root;
bad:
    jerr(j, 400, "invalid_request_error", "invalid_body",
         "the body must be a JSON object");
    return NULL;
}

static yajl_val field(yajl_val root, const char *name)
{
    for (size_t i = 0; i < root->u.object.len; i++)
        if (strcmp(root->u.object.keys[i], name) == 0)
            return YAJL_IS_NULL(root->u.object.values[i]) ? NULL : root->u.object.values[i];
    return NULL;
}

static int field_str(job_t *j, yajl_val root, const char *name, bool required,
                     size_t max, const char **out)
{
    yajl_val v = field(root, name);
    *out = NULL;
    if (!v && !required) return 0;
    const char *s = v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    size_t n = s ? strlen(s) : 0;
    bool ok = s && n <= max && (n > 0 || !required);
    for (size_t i = 0; ok && i < n; i++) ok = !is_ctl((unsigned char)s[i]);
    if (!ok) {
        jerr(j, 400, "invalid_request_error", "invalid_field",
             "\"%s\" must be a string of %s%zu bytes without control characters%s",
             name, required ? "1 to " : "at most ", max, required ? " (required)" : "");
        return -1;
    }
    *out = s;
    return 1;
}

static void ev_init(job_t *j, al_event_t *e, const char *kind)
{
    al_event_init(e);
    e->ts_ms = al_wall_ms();
    AL_EVENT_SET(e, kind, kind, strlen(kind));
    AL_EVENT_SET(e, actor, j->actor, strlen(j->actor));
    AL_EVENT_SET(e, method, j->method, strlen(j->method));
    AL_EVENT_SET(e, path, j->path, strlen(j->path));
    AL_EVENT_SET(e, request_id, j->request_id, strlen(j->request_id));
    AL_EVENT_SET(e, outcome, "ok", 2);
    e->status = 200;
}

static int ev_write(job_t *j, al_event_t *e, const al_buf_t *detail)
{
    if (detail && !detail->err && detail->len < sizeof e->detail)
        AL_EVENT_SET(e, detail, detail->p, detail->len);
    else if (detail)
        AL_EVENT_SET(e, detail, "{\"truncated\":true}", 18);
    int rc = al_store_event_insert(j->gw->store, e);
    if (rc != AL_OK)
        al_error("admin: cannot record %s by %s (request %s): %s", e->kind, j->actor,
                 j->request_id, al_strerror(rc));
    return rc;
}

static void json_cut(al_buf_t *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    al_buf_json_str(b, s, n < max ? n : max);
}

/* --- status and escalations ------------------------------------------------ */

/* Parse {"answer": "..."} or {"reject": "..."}. */
static bool parse_resolve(job_t *j)
{
    static const char *const known[] = {"answer", "reject", NULL};
    yajl_val root = parse_body(j, known);
    if (!root) return false;
    yajl_val a = field(root, "answer"), r = field(root, "reject");
    bool ok = false;
    if ((a != NULL) == (r != NULL)) {
        jerr(j, 400, "invalid_request_error", "invalid_body",
             "give exactly one of \"answer\" and \"reject\"");
        goto out;
    }
    yajl_val v = a ? a : r;
    const char *sv = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    if (!sv || strlen(sv) > ANSWER_MAX) {
        jerr(j, 400, "invalid_request_error", "invalid_field",
             "\"%s\" must be a string of at most 1 MiB", a ? "answer" : "reject");
        goto out;
    }
    j->answer = al_strdup(sv);
    j->reject = r != NULL;
    ok = true;
out:
    yajl_tree_free(root);
    return ok;
}

typedef struct list_ctx {
    al_buf_t *out;
    bool first;
} list_ctx_t;

static int list_cb(void *ud, const al_esc_row_t *r)
{
    list_ctx_t *l = ud;
    if (!l->first) al_buf_putc(l->out, ',');
    l->first = false;
    al_esc_json(l->out, r, true, false);
    return l->out->err ? 1 : 0;
}

static int count_cb(void *ud, const al_esc_row_t *r)
{
    (void)r;
    (*(uint64_t *)ud)++;
    return 0;
}

static void breaker_cb(void *ud, const al_breaker_info_t *in)
{
    list_ctx_t *s = ud;
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

static void do_status(job_t *j)
{
    al_gateway_t *gw = j->gw;
    if (!check(j, NULL)) return;
    unsigned inflight = 0;
    for (unsigned i = 0; i < gw->n_workers; i++) inflight += atomic_load(&gw->workers[i].inflight);
    uint64_t open = 0;
    al_esc_filter_t f = {.status = "open"};
    al_store_esc_each(gw->store, &f, count_cb, &open);
    al_buf_printf(&j->out,
                  "{\"version\":\"%s\",\"workers\":%u,\"inflight\":%u,\"escalations_open\":%llu,"
                  "\"breakers\":[",
                  AL_VERSION, gw->n_workers, inflight, (unsigned long long)open);
    list_ctx_t s = {&j->out, true};
    al_breaker_each(gw->breakers, breaker_cb, &s);
    al_buf_puts(&j->out, "]}");
    j->status = 200;
}

static void do_esc_list(job_t *j)
{
    char status[16], agent[AL_NAME_MAX], lim[16];
    bool owner = strcmp(j->tok.role, "owner") == 0;
    if (qparam(j, "status", status, sizeof status) < 0) status[0] = '\0';
    if (strcmp(status, "all") == 0) status[0] = '\0';
    int ha = qparam_name(j, "agent", agent, sizeof agent);
    if (ha < 0) return;
    /* An owner sees its agent's escalations: no filter means its agent. */
    if (!check(j, ha ? agent : owner ? j->tok.agent : NULL)) return;
    uint64_t v = 100;
    if (qparam(j, "limit", lim, sizeof lim) == 1 &&
        (al_parse_u64(lim, strlen(lim), &v) != AL_OK || v > 100000))
        v = 100;
    al_esc_filter_t f = {.status = status[0] ? status : NULL,
                         .agent = ha ? agent : owner ? j->tok.agent : NULL,
                         .limit = (uint32_t)v};
    list_ctx_t l = {&j->out, true};
    al_buf_puts(&j->out, "{\"object\":\"list\",\"data\":[");
    if (al_store_esc_each(j->gw->store, &f, list_cb, &l) != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    al_buf_puts(&j->out, "]}");
    j->status = 200;
}

static void do_esc_get(job_t *j)
{
    al_esc_row_t r;
    bool owner = strcmp(j->tok.role, "owner") == 0;
    if (!check(j, owner ? j->tok.agent : NULL)) return;
    /* Another agent's escalation is "not found" to an owner, as before: its
     * id says nothing about whether it exists. */
    if (al_store_esc_get(j->gw->store, j->seg, &r) != AL_OK) {
        jerr(j, 404, "not_found", "escalation_not_found", "no such escalation");
        return;
    }
    if (!may(j->tok.role, j->op, j->tok.agent, r.agent)) {
        al_esc_row_free(&r);
        jerr(j, 404, "not_found", "escalation_not_found", "no such escalation");
        return;
    }
    al_esc_json(&j->out, &r, true, true);
    al_esc_row_free(&r);
    j->status = 200;
}

static void do_resolve(job_t *j)
{
    if (!check(j, NULL) || !parse_resolve(j)) return;
    al_store_t *st = j->gw->store;
    int64_t now = al_wall_ms();
    int rc = al_store_esc_close(st, j->seg, j->reject ? "rejected" : "resolved", j->answer,
                                j->actor, now);
    al_esc_row_t r;
    if (rc == AL_ENOTFOUND) {
        jerr(j, 404, "not_found", "escalation_not_found", "no such escalation");
        return;
    }
    if (rc == AL_ESTATE) {
        char msg[96] = "the escalation is no longer open";
        if (al_store_esc_get(st, j->seg, &r) == AL_OK) {
            snprintf(msg, sizeof msg, "the escalation is already %s", r.status);
            al_esc_row_free(&r);
        }
        jerr(j, 409, "conflict", "escalation_closed", "%s", msg);
        return;
    }
    if (rc != AL_OK || al_store_esc_get(st, j->seg, &r) != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    al_event_t e;
    const char *kind = j->reject ? "escalation.rejected" : "escalation.resolved";
    ev_init(j, &e, kind);
    AL_EVENT_SET(&e, escalation_id, r.id, strlen(r.id));
    AL_EVENT_SET(&e, agent, r.agent, strlen(r.agent));
    AL_EVENT_SET(&e, route, r.route, strlen(r.route));
    al_buf_t d;
    al_buf_init(&d, sizeof e.detail - 1);
    al_buf_puts(&d, "{\"id\":");
    al_buf_json_str(&d, r.id, strlen(r.id));
    al_buf_printf(&d, ",\"status\":\"%s\"}", r.status);
    ev_write(j, &e, &d);
    al_buf_free(&d);
    if (j->gw->alerts) {
        al_alert_field_t f[] = {{"escalation", r.id}, {"agent", r.agent}, {"by", j->actor},
                                {"status", r.status}};
        al_alerts_post(j->gw->alerts, kind, "airlock: an escalation was answered", "good", f, 4);
    }
    al_esc_json(&j->out, &r, true, true);
    al_esc_row_free(&r);
    j->status = 200;
}

/* --- agents and tokens ------------------------------------------------------ */

static bool is_owner(const job_t *j) { return strcmp(j->tok.role, "owner") == 0; }

static void inventory_done(job_t *j, int rc)
{
    if (rc == AL_OK) j->status = 200;
    else if (rc == AL_ENOTFOUND)
        jerr(j, 404, "not_found", "agent_not_found", "no agent '%s' in the configuration", j->seg);
    else if (rc == AL_ETOOBIG) j->out.err = rc;
    else jerr(j, 500, "server_error", "store_error", "the store failed");
}

static void do_agents(job_t *j)
{
    const char *only = is_owner(j) ? j->tok.agent : NULL;
    if (!check(j, only)) return;
    inventory_done(j, al_inventory_list_json(j->cfg, j->gw->store, only, al_wall_ms(), &j->out));
}

static void do_agent(job_t *j)
{
    if (!check(j, j->seg)) return;
    int64_t now = al_wall_ms();
    if (j->op == A_AGENT)
        inventory_done(j, al_inventory_agent_json(j->cfg, j->gw->store, j->seg, now, &j->out));
    else
        inventory_done(j,
                       al_inventory_permissions_json(j->cfg, j->gw->store, j->seg, now, &j->out));
}

/* Is name one of the agent's models or routes? */
static bool agent_has(const al_config_t *c, const al_agent_t *a, const char *name)
{
    size_t n = strlen(name);
    const al_model_t *m = al_config_model(c, name, n);
    if (m && al_agent_allows(a, m)) return true;
    const al_route_t *r = al_config_route(c, name, n);
    return r && al_agent_allows_route(a, r);
}

/* Parse the mint body into cl (models, max_cost_usd) and *ttl_s. */
static bool parse_mint(job_t *j, const al_agent_t *a, al_token_claims_t *cl, int64_t *ttl_s)
{
    static const char *const known[] = {"models", "max_cost_usd", "ttl_s", NULL};
    int64_t cap_s = AL_MAX((int64_t)(j->cfg->token_max_ttl_ms / 1000), 1);
    bool ok = false;
    yajl_val root = parse_body(j, known);
    if (!root) return false;
    yajl_val v = field(root, "models");
    if (v) {
        if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > AL_TOKEN_MAX_MODELS) {
            jerr(j, 400, "invalid_request_error", "invalid_field",
                 "\"models\" must be a list of 1 to %d model or route names (or absent: "
                 "all of the agent's)", AL_TOKEN_MAX_MODELS);
            goto out;
        }
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val m = v->u.array.values[i];
            const char *s = YAJL_IS_STRING(m) ? YAJL_GET_STRING(m) : NULL;
            if (!s || !*s || strlen(s) >= sizeof cl->models[0] || !agent_has(j->cfg, a, s)) {
                char shown[72];
                snprintf(shown, sizeof shown, "%s", s ? s : "(not a string)");
                for (char *c = shown; *c; c++)
                    if (is_ctl((unsigned char)*c) || *c == '"') *c = '?';
                jerr(j, 400, "invalid_request_error", "model_not_allowed",
                     "\"models\"[%zu]: '%s' is not a model or route of agent '%s'", i, shown,
                     a->name);
                goto out;
            }
            for (size_t k = 0; k < cl->n_models; k++)
                if (strcmp(cl->models[k], s) == 0) {
                    jerr(j, 400, "invalid_request_error", "invalid_field",
                         "\"models\"[%zu]: '%s' is listed twice", i, s);
                    goto out;
                }
            snprintf(cl->models[cl->n_models++], sizeof cl->models[0], "%s", s);
        }
    }
    cl->max_cost_usd = -1;
    if ((v = field(root, "max_cost_usd"))) {
        if (!YAJL_IS_DOUBLE(v) || !(v->u.number.d >= 0) || v->u.number.d > 1e9) {
            jerr(j, 400, "invalid_request_error", "invalid_field",
                 "\"max_cost_usd\" must be a number from 0 to 1e9 (or absent: no cap of "
                 "the token's own)");
            goto out;
        }
        cl->max_cost_usd = v->u.number.d;
    }
    *ttl_s = cap_s;
    if ((v = field(root, "ttl_s"))) {
        if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1 || YAJL_GET_INTEGER(v) > cap_s) {
            jerr(j, 400, "invalid_request_error", "invalid_field",
                 "\"ttl_s\" must be a whole number of seconds from 1 to %lld (tokens.max_ttl)",
                 (long long)cap_s);
            goto out;
        }
        *ttl_s = YAJL_GET_INTEGER(v);
    }
    ok = true;
out:
    yajl_tree_free(root);
    return ok;
}

static void put_models(al_buf_t *b, const al_token_claims_t *cl, size_t n)
{
    if (cl->n_models == 0) {
        al_buf_puts(b, "null");
        return;
    }
    al_buf_putc(b, '[');
    for (size_t i = 0; i < n && i < cl->n_models; i++) {
        if (i) al_buf_putc(b, ',');
        al_buf_json_str(b, cl->models[i], strlen(cl->models[i]));
    }
    al_buf_putc(b, ']');
}

static void put_cost(al_buf_t *b, double usd)
{
    if (usd < 0) al_buf_puts(b, "null");
    else al_buf_printf(b, "%.17g", usd);
}

static void do_token_mint(job_t *j)
{
    al_token_claims_t cl;
    int64_t ttl_s = 0;
    if (!check(j, j->seg)) return;
    const al_agent_t *a = al_config_agent(j->cfg, j->seg, strlen(j->seg));
    if (!a) {
        jerr(j, 404, "not_found", "agent_not_found", "no agent '%s' in the configuration", j->seg);
        return;
    }
    memset(&cl, 0, sizeof cl);
    if (!parse_mint(j, a, &cl, &ttl_s)) return;
    al_token_new_id(cl.jti);
    snprintf(cl.agent, sizeof cl.agent, "%s", a->name);
    cl.iat_s = al_wall_ms() / 1000;
    cl.exp_s = cl.iat_s + ttl_s;

    al_buf_t tok;
    al_buf_init(&tok, AL_TOKEN_MAX_LEN);
    int rc = al_token_mint(j->cfg->token_key, j->cfg->token_key_len, &cl, &tok);
    if (rc == AL_OK && tok.err) rc = tok.err;
    if (rc != AL_OK) {
        jerr(j, 500, "server_error", "token_error", "cannot mint the token: %s", al_strerror(rc));
        goto out;
    }
    /* The record first: a token nobody can account for is never handed out.
     * Models that do not fit the detail are counted instead of listed. */
    al_event_t e;
    ev_init(j, &e, "token.minted");
    AL_EVENT_SET(&e, agent, cl.agent, strlen(cl.agent));
    AL_EVENT_SET(&e, token_id, cl.jti, strlen(cl.jti));
    e.status = 201;
    al_buf_t d;
    al_buf_init(&d, sizeof e.detail - 1);
    for (size_t n = cl.n_models;; n--) {
        al_buf_reset(&d);
        al_buf_printf(&d, "{\"id\":\"%s\",\"models\":", cl.jti);
        put_models(&d, &cl, n);
        if (n < cl.n_models) al_buf_printf(&d, ",\"models_omitted\":%zu", cl.n_models - n);
        al_buf_puts(&d, ",\"max_cost_usd\":");
        put_cost(&d, cl.max_cost_usd);
        al_buf_printf(&d, ",\"expires_at\":%lld}", (long long)cl.exp_s);
        if (!d.err || n == 0) break;
    }
    rc = ev_write(j, &e, &d);
    al_buf_free(&d);
    if (rc != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "cannot record the token: not minted");
        goto out;
    }
    j->secret = true;
    al_buf_puts(&j->out, "{\"object\":\"token\",\"token\":");
    al_buf_json_str(&j->out, tok.p, tok.len);
    al_buf_printf(&j->out, ",\"id\":\"%s\",\"agent\":", cl.jti);
    al_buf_json_str(&j->out, cl.agent, strlen(cl.agent));
    al_buf_puts(&j->out, ",\"models\":");
    put_models(&j->out, &cl, cl.n_models);
    al_buf_puts(&j->out, ",\"max_cost_usd\":");
    put_cost(&j->out, cl.max_cost_usd);
    al_buf_printf(&j->out, ",\"expires_at\":%lld}", (long long)cl.exp_s);
    j->status = 201;
out:
    if (tok.p) explicit_bzero(tok.p, tok.len);
    al_buf_free(&tok);
}

/* --- keys ------------------------------------------------------------------- */

static void put_ms(al_buf_t *b, const char *key, int64_t ms)
{
    if (ms > 0) al_buf_printf(b, ",\"%s\":%lld", key, (long long)ms);
    else al_buf_printf(b, ",\"%s\":null", key);
}

static void key_json(al_buf_t *b, const al_key_row_t *r, int64_t now)
{
    al_buf_puts(b, "{\"object\":\"key\",\"id\":");
    al_buf_json_str(b, r->id, strnlen(r->id, sizeof r->id));
    al_buf_puts(b, ",\"agent\":");
    al_buf_json_str(b, r->agent, strnlen(r->agent, sizeof r->agent));
    al_buf_puts(b, ",\"label\":");
    al_buf_json_str(b, r->label, strnlen(r->label, sizeof r->label));
    al_buf_printf(b, ",\"status\":\"%s\"",
                  r->revoked_ms ? "revoked"
                  : r->expires_ms && r->expires_ms <= now ? "expired" : "active");
    put_ms(b, "created_ms", r->created_ms);
    put_ms(b, "expires_ms", r->expires_ms);
    put_ms(b, "revoked_ms", r->revoked_ms);
    put_ms(b, "last_used_ms", r->last_used_ms);
    al_buf_putc(b, '}');
}

typedef struct keys_ctx {
    const char *agent;          /* filter, NULL = all */
    const char *id;             /* find one */
    al_key_row_t found;
    bool hit;
    al_buf_t *out;
    bool first;
    int64_t now;
} keys_ctx_t;

static int keys_cb(void *ud, const al_key_row_t *r)
{
    keys_ctx_t *k = ud;
    if (k->id) {
        if (strcmp(k->id, r->id) != 0) return 0;
        k->found = *r;
        k->hit = true;
        return 1;
    }
    if (k->agent && strcmp(k->agent, r->agent) != 0) return 0;
    if (!k->first) al_buf_putc(k->out, ',');
    k->first = false;
    key_json(k->out, r, k->now);
    return k->out->err ? 1 : 0;
}

static void do_keys_list(job_t *j)
{
    char agent[AL_NAME_MAX];
    int ha = qparam_name(j, "agent", agent, sizeof agent);
    if (ha < 0) return;
    const char *filter = ha ? agent : is_owner(j) ? j->tok.agent : NULL;
    if (!check(j, filter)) return;
    keys_ctx_t k = {.agent = filter, .out = &j->out, .first = true, .now = al_wall_ms()};
    al_buf_puts(&j->out, "{\"object\":\"list\",\"data\":[");
    if (al_store_key_each(j->gw->store, keys_cb, &k) != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    al_buf_puts(&j->out, "]}");
    j->status = 200;
}

/* Role check for an op whose agent is known only later: could this token
 * do it for any agent? */
static bool precheck(job_t *j) { return check(j, is_owner(j) ? j->tok.agent : NULL); }

#define KEY_TTL_MAX_S 3153600000LL /* 100 years */

static void do_key_create(job_t *j)
{
    static const char *const known[] = {"agent", "label", "expires_in_s", NULL};
    const char *agent = NULL, *label = NULL;
    char secret[AL_KEY_SECRET_MAX] = "";
    al_key_row_t row;
    int rc;
    if (!precheck(j)) return;
    yajl_val root = parse_body(j, known);
    if (!root) return;
    if (field_str(j, root, "agent", true, AL_NAME_MAX - 1, &agent) < 0 || !check(j, agent))
        goto out;
    if (!al_config_agent(j->cfg, agent, strlen(agent))) {
        jerr(j, 400, "invalid_request_error", "unknown_agent",
             "\"agent\": '%s' is not declared in the configuration", agent);
        goto out;
    }
    if (field_str(j, root, "label", false, sizeof row.label - 1, &label) < 0) goto out;
    int64_t now = al_wall_ms(), expires_ms = 0;
    yajl_val v = field(root, "expires_in_s");
    if (v) {
        if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1 ||
            YAJL_GET_INTEGER(v) > KEY_TTL_MAX_S) {
            jerr(j, 400, "invalid_request_error", "invalid_field",
                 "\"expires_in_s\" must be a whole number of seconds from 1 to %lld (or "
                 "absent: never)", KEY_TTL_MAX_S);
            goto out;
        }
        expires_ms = now + (int64_t)YAJL_GET_INTEGER(v) * 1000;
    }
    for (int attempt = 0;; attempt++) {
        memset(&row, 0, sizeof row);
        al_key_generate(secret, row.id);
        al_key_hash(secret, strlen(secret), row.hash);
        snprintf(row.agent, sizeof row.agent, "%s", agent);
        snprintf(row.label, sizeof row.label, "%s", label ? label : "");
        row.created_ms = now;
        row.expires_ms = expires_ms;
        rc = al_store_key_insert(j->gw->store, &row);
        if (rc != AL_EEXIST || attempt == 2) break; /* an id collision: draw again */
    }
    if (rc != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "cannot store the key: %s", al_strerror(rc));
        goto out;
    }
    al_event_t e;
    ev_init(j, &e, "key.created");
    AL_EVENT_SET(&e, agent, row.agent, strlen(row.agent));
    AL_EVENT_SET(&e, key_id, row.id, strlen(row.id));
    e.status = 201;
    al_buf_t d;
    al_buf_init(&d, sizeof e.detail - 1);
    for (size_t cut = sizeof row.label;; cut /= 4) {
        al_buf_reset(&d);
        al_buf_printf(&d, "{\"id\":\"%s\",\"agent\":", row.id);
        al_buf_json_str(&d, row.agent, strlen(row.agent));
        al_buf_puts(&d, ",\"label\":");
        json_cut(&d, row.label, cut);
        if (row.expires_ms)
            al_buf_printf(&d, ",\"expires_at\":%lld}", (long long)(row.expires_ms / 1000));
        else al_buf_puts(&d, ",\"expires_at\":null}");
        if (!d.err || cut == 0) break;
    }
    rc = ev_write(j, &e, &d);
    al_buf_free(&d);
    if (rc != AL_OK) {
        /* No usable key without its record. */
        al_store_key_revoke(j->gw->store, row.id);
        jerr(j, 500, "server_error", "store_error", "cannot record the key: not created");
        goto out;
    }
    j->secret = true;
    al_buf_puts(&j->out, "{\"object\":\"key\",\"key\":");
    al_buf_json_str(&j->out, secret, strlen(secret));
    al_buf_printf(&j->out, ",\"id\":\"%s\",\"agent\":", row.id);
    al_buf_json_str(&j->out, row.agent, strlen(row.agent));
    al_buf_puts(&j->out, ",\"label\":");
    al_buf_json_str(&j->out, row.label, strlen(row.label));
    if (expires_ms) al_buf_printf(&j->out, ",\"expires_at\":%lld}", (long long)(expires_ms / 1000));
    else al_buf_puts(&j->out, ",\"expires_at\":null}");
    j->status = 201;
out:
    explicit_bzero(secret, sizeof secret);
    yajl_tree_free(root);
}

static void do_key_revoke(job_t *j)
{
    if (!precheck(j)) return;
    keys_ctx_t k = {.id = j->seg};
    if (al_store_key_each(j->gw->store, keys_cb, &k) != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    if (!k.hit) {
        jerr(j, 404, "not_found", "key_not_found", "no such key");
        return;
    }
    if (!check(j, k.found.agent)) return;
    if (!k.found.revoked_ms) {
        int rc = al_store_key_revoke(j->gw->store, k.found.id);
        if (rc == AL_ENOTFOUND) {
            jerr(j, 404, "not_found", "key_not_found", "no such key");
            return;
        }
        if (rc != AL_OK) {
            jerr(j, 500, "server_error", "store_error", "cannot revoke the key");
            return;
        }
        k.found.revoked_ms = al_wall_ms();
        al_event_t e;
        ev_init(j, &e, "key.revoked");
        AL_EVENT_SET(&e, agent, k.found.agent, strlen(k.found.agent));
        AL_EVENT_SET(&e, key_id, k.found.id, strlen(k.found.id));
        al_buf_t d;
        al_buf_init(&d, sizeof e.detail - 1);
        al_buf_printf(&d, "{\"id\":\"%s\",\"agent\":", k.found.id);
        al_buf_json_str(&d, k.found.agent, strlen(k.found.agent));
        al_buf_putc(&d, '}');
        ev_write(j, &e, &d);
        al_buf_free(&d);
    }
    /* Revoking a revoked key changes nothing: 200 with its state, no event. */
    key_json(&j->out, &k.found, al_wall_ms());
    j->status = 200;
}

/* --- kill switches ------------------------------------------------------------ */

static void kill_json(al_buf_t *b, const al_kill_row_t *r)
{
    al_buf_printf(b, "{\"object\":\"kill_switch\",\"scope\":\"%s\",\"target\":", r->scope);
    if (r->target[0]) al_buf_json_str(b, r->target, strnlen(r->target, sizeof r->target));
    else al_buf_puts(b, "null");
    al_buf_puts(b, ",\"reason\":");
    al_buf_json_str(b, r->reason, strnlen(r->reason, sizeof r->reason));
    al_buf_printf(b, ",\"drain\":%s", r->drain ? "true" : "false");
    put_ms(b, "created_ms", r->created_ms);
    al_buf_puts(b, ",\"created_by\":");
    al_buf_json_str(b, r->created_by, strnlen(r->created_by, sizeof r->created_by));
    al_buf_putc(b, '}');
}

typedef struct kill_ctx {
    al_buf_t *out;
    bool first;
    const char *scope, *target;  /* find one */
    al_kill_row_t found;
    bool hit;
} kill_ctx_t;

static int kill_cb(void *ud, const al_kill_row_t *r)
{
    kill_ctx_t *k = ud;
    if (k->scope) {
        if (strcmp(k->scope, r->scope) != 0 || strcmp(k->target, r->target) != 0) return 0;
        k->found = *r;
        k->hit = true;
        return 1;
    }
    if (!k->first) al_buf_putc(k->out, ',');
    k->first = false;
    kill_json(k->out, r);
    return k->out->err ? 1 : 0;
}

static void do_kill_list(job_t *j)
{
    if (!check(j, NULL)) return;
    kill_ctx_t k = {.out = &j->out, .first = true};
    al_buf_puts(&j->out, "{\"object\":\"list\",\"data\":[");
    if (al_store_kill_each(j->gw->store, kill_cb, &k) != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    al_buf_puts(&j->out, "]}");
    j->status = 200;
}

static bool team_known(const al_config_t *c, const char *name)
{
    if (al_config_team(c, name, strlen(name))) return true;
    if (c->n_teams) return false;   /* a teams section lists every team */
    for (size_t i = 0; i < c->n_agents; i++)
        if (c->agents[i].team && strcmp(c->agents[i].team, name) == 0) return true;
    return false;
}

/* scope and target of a kill/unkill body into row; known: the target must
 * exist in the configuration (set); clearing takes any name. */
static bool parse_switch(job_t *j, yajl_val root, bool known, al_kill_row_t *row)
{
    static const char *const scopes[] = {"all", "agent", "team", "provider", "model"};
    const char *scope = NULL, *target = NULL;
    size_t si = 0;
    if (field_str(j, root, "scope", true, sizeof row->scope - 1, &scope) < 0) return false;
    while (si < AL_ARRAY_LEN(scopes) && strcmp(scopes[si], scope) != 0) si++;
    if (si == AL_ARRAY_LEN(scopes)) {
        jerr(j, 400, "invalid_request_error", "invalid_field",
             "\"scope\" must be one of all, agent, team, provider, model");
        return false;
    }
    bool all = si == 0;
    if (field_str(j, root, "target", !all, sizeof row->target - 1, &target) < 0) return false;
    if (all && target && *target) {
        jerr(j, 400, "invalid_request_error", "invalid_field",
             "\"target\" must be absent for scope all");
        return false;
    }
    snprintf(row->scope, sizeof row->scope, "%s", scope);
    snprintf(row->target, sizeof row->target, "%s", all ? "" : target);
    if (!known || all) return true;
    const al_config_t *c = j->cfg;
    size_t n = strlen(target);
    bool ok = si == 1   ? al_config_agent(c, target, n) != NULL
              : si == 2 ? team_known(c, target)
              : si == 3 ? al_config_provider(c, target, n) != NULL
                        : al_config_model(c, target, n) || al_config_route(c, target, n);
    if (!ok) {
        static const char *const what[] = {"", "an agent", "a team", "a provider",
                                           "a model or route"};
        jerr(j, 400, "invalid_request_error", "unknown_target",
             "\"target\": '%s' is not %s of the configuration", target, what[si]);
        return false;
    }
    return true;
}

/* The kill.set / kill.cleared event and alert; the reason is cut until the
 * detail fits. */
static void kill_event(job_t *j, const char *kind, const al_kill_row_t *r)
{
    al_event_t e;
    ev_init(j, &e, kind);
    if (!strcmp(r->scope, "agent")) AL_EVENT_SET(&e, agent, r->target, strlen(r->target));
    if (!strcmp(r->scope, "provider")) AL_EVENT_SET(&e, provider, r->target, strlen(r->target));
    if (!strcmp(r->scope, "model")) AL_EVENT_SET(&e, model, r->target, strlen(r->target));
    al_buf_t d;
    al_buf_init(&d, sizeof e.detail - 1);
    for (size_t cut = sizeof r->reason;; cut /= 4) {
        al_buf_reset(&d);
        al_buf_printf(&d, "{\"scope\":\"%s\",\"target\":", r->scope);
        json_cut(&d, r->target, cut < 64 ? 64 : cut);
        al_buf_puts(&d, ",\"reason\":");
        json_cut(&d, r->reason, cut);
        al_buf_printf(&d, ",\"drain\":%s}", r->drain ? "true" : "false");
        if (!d.err || cut == 0) break;
    }
    ev_write(j, &e, &d);
    al_buf_free(&d);
    if (j->gw->alerts) {
        al_alert_field_t f[] = {{"scope", r->scope}, {"target", r->target[0] ? r->target : "*"},
                                {"reason", r->reason}, {"by", j->actor}};
        bool set = strcmp(kind, "kill.set") == 0;
        al_alerts_post(j->gw->alerts, kind,
                       set ? "airlock: a kill switch was turned on"
                           : "airlock: a kill switch was turned off",
                       set ? "danger" : "good", f, 4);
    }
}

static void do_kill_set(job_t *j)
{
    static const char *const known[] = {"scope", "target", "reason", "drain", NULL};
    al_kill_row_t row;
    const char *reason = NULL;
    if (!check(j, NULL)) return;
    yajl_val root = parse_body(j, known);
    if (!root) return;
    memset(&row, 0, sizeof row);
    if (!parse_switch(j, root, true, &row) ||
        field_str(j, root, "reason", true, sizeof row.reason - 1, &reason) < 0)
        goto out;
    snprintf(row.reason, sizeof row.reason, "%s", reason);
    yajl_val v = field(root, "drain");
    if (v && !YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        jerr(j, 400, "invalid_request_error", "invalid_field", "\"drain\" must be true or false");
        goto out;
    }
    row.drain = v && YAJL_IS_TRUE(v);
    row.created_ms = al_wall_ms();
    snprintf(row.created_by, sizeof row.created_by, "%s", j->actor);
    int rc = al_store_kill_set(j->gw->store, &row);
    if (rc != AL_OK) {
        jerr(j, rc == AL_EINVAL ? 400 : 500, rc == AL_EINVAL ? "invalid_request_error" :
             "server_error", "store_error", "cannot set the kill switch: %s", al_strerror(rc));
        goto out;
    }
    kill_event(j, "kill.set", &row);
    kill_json(&j->out, &row);
    j->status = 200;
out:
    yajl_tree_free(root);
}

static void do_kill_clear(job_t *j)
{
    static const char *const known[] = {"scope", "target", NULL};
    al_kill_row_t row;
    if (!check(j, NULL)) return;
    yajl_val root = parse_body(j, known);
    if (!root) return;
    memset(&row, 0, sizeof row);
    if (!parse_switch(j, root, false, &row)) goto out;
    /* Its reason and drain go into the record of the clearing. */
    kill_ctx_t k = {.scope = row.scope, .target = row.target};
    al_store_kill_each(j->gw->store, kill_cb, &k);
    int rc = al_store_kill_clear(j->gw->store, row.scope, row.target);
    if (rc == AL_ENOTFOUND) {
        jerr(j, 404, "not_found", "kill_switch_not_found", "no %s kill switch%s%s is on",
             row.scope, row.target[0] ? " on " : "", row.target);
        goto out;
    }
    if (rc != AL_OK) {
        jerr(j, rc == AL_EINVAL ? 400 : 500, rc == AL_EINVAL ? "invalid_request_error" :
             "server_error", "store_error", "cannot clear the kill switch: %s", al_strerror(rc));
        goto out;
    }
    if (k.hit) row = k.found;
    kill_event(j, "kill.cleared", &row);
    al_buf_printf(&j->out, "{\"object\":\"kill_switch\",\"scope\":\"%s\",\"target\":", row.scope);
    if (row.target[0]) al_buf_json_str(&j->out, row.target, strlen(row.target));
    else al_buf_puts(&j->out, "null");
    al_buf_puts(&j->out, ",\"cleared\":true}");
    j->status = 200;
out:
    yajl_tree_free(root);
}

/* --- events ------------------------------------------------------------------- */

typedef struct ev_ctx {
    al_buf_t *out;
    bool first;
} ev_ctx_t;

static int events_cb(void *ud, const al_event_t *e)
{
    ev_ctx_t *c = ud;
    if (!c->first) al_buf_putc(c->out, ',');
    c->first = false;
    al_event_to_json(e, c->out);
    return c->out->err ? 1 : 0;
}

static void do_events(job_t *j)
{
    char agent[AL_NAME_MAX], kind[32];
    int64_t since = 0, until = 0, limit = 100;
    if (!check(j, NULL)) return;
    int ha = qparam_name(j, "agent", agent, sizeof agent);
    int hk = ha < 0 ? -1 : qparam_name(j, "kind", kind, sizeof kind);
    if (hk < 0 || qparam_i64(j, "since_ms", 0, INT64_MAX, &since) < 0 ||
        qparam_i64(j, "until_ms", 0, INT64_MAX, &until) < 0 ||
        qparam_i64(j, "limit", 1, 10000, &limit) < 0)
        return;
    al_event_filter_t f = {.agent = ha ? agent : NULL, .kind = hk ? kind : NULL,
                           .since_ms = since, .until_ms = until, .limit = (uint32_t)limit};
    ev_ctx_t c = {&j->out, true};
    al_buf_puts(&j->out, "{\"object\":\"list\",\"data\":[");
    if (al_store_events_each(j->gw->store, &f, events_cb, &c) != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    al_buf_puts(&j->out, "]}");
    j->status = 200;
}

/* --- the job, on a pool thread -------------------------------------------- */

static void do_audit_show(job_t *j);
static void do_audit_cp(job_t *j);

static void job_work(uv_work_t *wk)
{
    job_t *j = wk->data;
    al_gateway_t *gw = j->gw;
    if (!j->have_token || al_store_admin_token_find(gw->store, j->hash, al_wall_ms(), &j->tok) !=
                              AL_OK) {
        jerr(j, 401, "authentication_error", "invalid_admin_token",
             "missing or invalid admin token: send Authorization: Bearer <admin token>");
        return;
    }
    snprintf(j->actor, sizeof j->actor, "admin:%s", j->tok.id);
    if (j->op == A_NOT_FOUND) {
        jerr(j, 404, "invalid_request_error", "unknown_url", "unknown path");
        return;
    }
    if (j->op == A_NOT_ALLOWED) {
        jerr(j, 405, "invalid_request_error", "method_not_allowed",
             "method not allowed on this path (allowed: %s)", j->allow);
        return;
    }
    pthread_mutex_lock(&gw->lock);
    j->cfg = al_config_ref(gw->cfg);
    pthread_mutex_unlock(&gw->lock);
    switch (j->op) {
    case A_STATUS: do_status(j); break;
    case A_ESC_LIST: do_esc_list(j); break;
    case A_ESC_GET: do_esc_get(j); break;
    case A_ESC_RESOLVE: do_resolve(j); break;
    case A_AGENTS: do_agents(j); break;
    case A_AGENT:
    case A_PERMS: do_agent(j); break;
    case A_TOKEN_MINT: do_token_mint(j); break;
    case A_KEYS_LIST: do_keys_list(j); break;
    case A_KEY_CREATE: do_key_create(j); break;
    case A_KEY_REVOKE: do_key_revoke(j); break;
    case A_KILL_LIST: do_kill_list(j); break;
    case A_KILL_SET: do_kill_set(j); break;
    case A_KILL_CLEAR: do_kill_clear(j); break;
    case A_EVENTS: do_events(j); break;
    case A_AUDIT_SHOW: do_audit_show(j); break;
    case A_AUDIT_CP: do_audit_cp(j); break;
    default: break;
    }
    al_config_unref(j->cfg);
    j->cfg = NULL;
    if (j->out.err)
        jerr(j, 500, "server_error", "too_big", "the answer is too large");
}

/* --- audit ----------------------------------------------------------------- */

static int cp_cb(void *ud, sqlite3 *db)
{
    job_t *j = ud;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT size, note, ts_ms FROM audit_checkpoints ORDER BY id DESC "
                                "LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return AL_EIO;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        al_buf_printf(&j->out, "{\"size\":%lld,\"ts_ms\":%lld,\"checkpoint\":",
                      (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 2));
        al_buf_json_str(&j->out, (const char *)sqlite3_column_text(st, 1),
                        (size_t)sqlite3_column_bytes(st, 1));
        al_buf_putc(&j->out, '}');
        rc = AL_OK;
    } else {
        rc = rc == SQLITE_DONE ? AL_ENOTFOUND : AL_EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

typedef struct show_ctx {
    job_t *j;
    uint64_t seq;
    char err[256];
} show_ctx_t;

static int show_cb(void *ud, sqlite3 *db)
{
    show_ctx_t *x = ud;
    return al_audit_show(db, x->seq, x->j->gw->keyring, &x->j->out, x->err, sizeof x->err);
}

static void do_audit_show(job_t *j)
{
    if (!check(j, NULL)) return;
    char *end = NULL;
    unsigned long long seq = strtoull(j->seg, &end, 10);
    if (!j->seg[0] || *end || seq == 0 || j->seg[0] == '-' || j->seg[0] == '+') {
        jerr(j, 400, "invalid_request_error", "invalid_seq",
             "the record's sequence number must be a positive integer");
        return;
    }
    show_ctx_t x = {j, seq, ""};
    int rc = al_store_with_db(j->gw->store, show_cb, &x);
    if (rc == AL_ENOTFOUND) {
        al_buf_reset(&j->out);
        jerr(j, 404, "not_found", "no_such_record", "no audit record with that sequence number");
        return;
    }
    if (rc != AL_OK) {
        al_buf_reset(&j->out);
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    j->status = 200;
}

static void do_audit_cp(job_t *j)
{
    if (!check(j, NULL)) return;
    int rc = al_store_with_db(j->gw->store, cp_cb, j);
    if (rc == AL_ENOTFOUND) {
        jerr(j, 404, "not_found", "no_checkpoint", "no checkpoint has been signed yet");
        return;
    }
    if (rc != AL_OK) {
        jerr(j, 500, "server_error", "store_error", "the store failed");
        return;
    }
    j->status = 200;
}

/* --- the control loop side ----------------------------------------------- */

static void on_abort(al_http_req_t *req)
{
    job_t *j = req->ud;
    j->req = NULL;
}

static void job_free(job_t *j)
{
    if (j->secret && j->out.p) explicit_bzero(j->out.p, j->out.len);
    al_buf_free(&j->out);
    free(j->answer);
    free(j->body);
    free(j->query);
    free(j);
}

static void job_after(uv_work_t *wk, int status)
{
    job_t *j = wk->data;
    (void)status;
    if (j->req) {
        char rid[160], allow[80];
        snprintf(rid, sizeof rid, "X-Request-Id: %s", j->request_id);
        snprintf(allow, sizeof allow, "Allow: %s", j->allow);
        const char *h[] = {rid, "Cache-Control: no-store", allow};
        j->req->on_abort = NULL;
        al_http_respond(j->req, j->status, "application/json", h, j->status == 405 ? 3 : 2,
                        j->out.p ? j->out.p : "{}", j->out.p ? j->out.len : 2);
    }
    job_free(j);
}

/* The routes: segments after /admin/v1/, "*" standing for one name or id. */
static const struct {
    const char *seg[3];
    int get, post;   /* ops, -1 = not on this path */
} routes[] = {
    {{"status", NULL, NULL}, A_STATUS, -1},
    {{"agents", NULL, NULL}, A_AGENTS, -1},
    {{"agents", "*", NULL}, A_AGENT, -1},
    {{"agents", "*", "permissions"}, A_PERMS, -1},
    {{"agents", "*", "tokens"}, -1, A_TOKEN_MINT},
    {{"keys", NULL, NULL}, A_KEYS_LIST, A_KEY_CREATE},
    {{"keys", "*", "revoke"}, -1, A_KEY_REVOKE},
    {{"kill", NULL, NULL}, A_KILL_LIST, A_KILL_SET},
    {{"unkill", NULL, NULL}, -1, A_KILL_CLEAR},
    {{"events", NULL, NULL}, A_EVENTS, -1},
    {{"escalations", NULL, NULL}, A_ESC_LIST, -1},
    {{"escalations", "*", NULL}, A_ESC_GET, -1},
    {{"escalations", "*", "resolve"}, -1, A_ESC_RESOLVE},
    {{"audit", "records", "*"}, A_AUDIT_SHOW, -1},
    {{"audit", "checkpoint", NULL}, A_AUDIT_CP, -1},
};

/* Match req's path; fills op (A_NOT_FOUND / A_NOT_ALLOWED with allow), seg. */
static void route(const al_http_req_t *req, job_t *j)
{
    const char *segs[4];
    size_t lens[4], n = 0;
    j->op = A_NOT_FOUND;
    if (strncmp(req->path, "/admin/v1/", 10) != 0) return;
    for (const char *p = req->path + 10;;) {
        const char *sl = strchr(p, '/');
        size_t l = sl ? (size_t)(sl - p) : strlen(p);
        if (n == 3 || l == 0) return;
        segs[n] = p;
        lens[n++] = l;
        if (!sl) break;
        p = sl + 1;
    }
    bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    bool post = req->method == HTTP_POST;
    for (size_t r = 0; r < AL_ARRAY_LEN(routes); r++) {
        size_t k = 0;
        for (; k < n && routes[r].seg[k]; k++) {
            const char *want = routes[r].seg[k];
            if (strcmp(want, "*") == 0) {
                if (!url_decode(segs[k], lens[k], false, j->seg, sizeof j->seg)) return;
            } else if (strlen(want) != lens[k] || memcmp(want, segs[k], lens[k]) != 0) {
                break;
            }
        }
        if (k != n || (k < 3 && routes[r].seg[k])) continue;
        snprintf(j->allow, sizeof j->allow, "%s%s%s", routes[r].get >= 0 ? "GET, HEAD" : "",
                 routes[r].get >= 0 && routes[r].post >= 0 ? ", " : "",
                 routes[r].post >= 0 ? "POST" : "");
        int op = get ? routes[r].get : post ? routes[r].post : -1;
        j->op = op >= 0 ? (op_t)op : A_NOT_ALLOWED;
        return;
    }
}

void al_admin_handle(al_gateway_t *gw, al_http_req_t *req)
{
    job_t *j = al_calloc(1, sizeof *j);
    j->gw = gw;
    j->req = req;
    al_http_request_id(req, j->request_id);
    route(req, j);
    snprintf(j->method, sizeof j->method, "%s", http_method_str((enum http_method)req->method));
    snprintf(j->path, sizeof j->path, "%s", req->path);
    j->query = al_strdup(req->query ? req->query : "");
    al_buf_init(&j->out, 64 << 20);
    const al_http_hdr_t *h = al_http_header(req, "authorization");
    if (h && h->value_len > 7 && al_mem_ieq(h->value, 7, "bearer ", 7)) {
        al_key_hash(h->value + 7, h->value_len - 7, j->hash);
        j->have_token = true;
    }
    if (req->method == HTTP_POST) {
        /* Copied here, parsed by the job after the token is checked. */
        size_t cap = j->op == A_ESC_RESOLVE ? ADMIN_BODY_MAX : SMALL_BODY_MAX;
        if (req->body.len > cap) {
            j->body_too_big = true;
        } else if (req->body.len > 0) {
            j->body = al_malloc(req->body.len + 1);
            memcpy(j->body, req->body.p, req->body.len);
            j->body[req->body.len] = '\0';
            j->body_len = req->body.len;
        }
    }
    j->work.data = j;
    req->ud = j;
    req->on_abort = on_abort;
    if (uv_queue_work(gw->loop, &j->work, job_work, job_after) != 0) {
        char rid[160];
        snprintf(rid, sizeof rid, "X-Request-Id: %s", j->request_id);
        const char *hh[] = {rid, "Retry-After: 1"};
        req->on_abort = NULL;
        job_free(j);
        al_http_respond_error(req, 503, "overloaded", "busy", "retry shortly", hh, 2);
    }
}
