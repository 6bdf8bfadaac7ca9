/* guard.c - the guardrails on a request's way in and out.
 *
 * al__guard_begin runs after admission: it walks the request's texts once
 * (PII and injection in one scan per text), redacts, blocks or escalates
 * per the agent's policy, starts the model-based detectors (the request
 * waits for them without blocking the loop) and then hands over to the
 * route.  On the way out, a complete answer is walked by al__guard_body
 * (PII, placeholders restored in reversible mode, leakage of the system
 * prompt, structured output), and a stream's chunks pass through a
 * hold-back filter in al__guard_chunk.  Verdicts (never matched values) go
 * to the event and to metrics in al__guard_finish. */
#include "guard/leak.h"
#include "guard/policy.h"
#include "guard/redact.h"
#include "obs/metrics.h"
#include "pipeline/ctx.h"
#include "util/json.h"
#include "util/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLS_TEXT_MAX (64u << 10)   /* text sent to a model-based detector */
#define SYS_TEXT_MAX (256u << 10)  /* system prompt kept for the leakage check */
#define OUT_TEXT_MAX (4u << 20)    /* streamed answer kept for the schema check */
#define LEAK_ENTITY 0xffff         /* a leaked span, as a finding */

enum { DIR_IN = 0, DIR_OUT = 1 };

typedef struct al_gctx al_gctx_t;

typedef struct gdet {
    al_gctx_t *g;
    al_classify_job_t *job;
    al_verdict_t v;
    bool started, done;
} gdet_t;

struct al_gctx {
    al_ctx_t *c;
    const al_guard_policy_t *pol;
    al_redact_map_t *map;
    al_scan_result_t res;
    int dir;
    /* what was found */
    uint32_t ent_n[2][AL_GUARD_MAX_ENT];
    bool ent_block[2][AL_GUARD_MAX_ENT];
    bool pii_block[2], pii_escalate[2];
    double inj_score;
    uint32_t inj_fam;
    bool inj_scanned;
    gdet_t det[AL_GUARD_MAX_DETECTORS];
    unsigned pending;
    al_buf_t cls_text;
    al_buf_t more;                 /* findings past one scan's cap */
    /* leakage */
    al_buf_t sys;
    al_leak_t *leak;
    bool leak_hit;
    /* structured output */
    al_schema_t *req_schema;       /* from the request's response_format */
    bool schema_checked, schema_bad;
    unsigned schema_retries;
    char schema_err[160];
    al_buf_t out_text;             /* streamed content, for the schema check */
    /* streams */
    al_gstream_t *gs;
    bool gs_used;                  /* a stream fed the leakage state */
    bool blocked;                  /* an output block: stop */
    char block_code[64];
    char block_msg[256];
};

/* --- the leakage sets, built once per system prompt per thread ------------ */

#define LEAK_CACHE 8
#define LEAK_CACHE_MAX_PROMPT (16u << 10)

typedef struct leak_entry {
    char *prompt;
    size_t len, min;
    al_leak_t *l;
} leak_entry_t;

static __thread leak_entry_t t_leak[LEAK_CACHE];
static __thread unsigned t_leak_next;
static pthread_key_t leak_key;
static pthread_once_t leak_once = PTHREAD_ONCE_INIT;

/* Runs in the exiting thread: its cache goes with it. */
static void leak_cache_free(void *unused)
{
    (void)unused;
    for (unsigned i = 0; i < LEAK_CACHE; i++) {
        al_leak_free(t_leak[i].l);
        free(t_leak[i].prompt);
        t_leak[i] = (leak_entry_t){0};
    }
}

static void leak_key_make(void)
{
    (void)pthread_key_create(&leak_key, leak_cache_free);
}

/* A leakage checker for this prompt: a copy of a cached one when the
 * worker has seen the prompt before (agents repeat theirs), else built. */
static al_leak_t *leak_for(const char *prompt, size_t len, size_t min)
{
    if (len > LEAK_CACHE_MAX_PROMPT) return al_leak_new(prompt, len, min);
    for (unsigned i = 0; i < LEAK_CACHE; i++) {
        leak_entry_t *e = &t_leak[i];
        if (e->l && e->len == len && e->min == min && memcmp(e->prompt, prompt, len) == 0)
            return al_leak_clone(e->l);
    }
    al_leak_t *l = al_leak_new(prompt, len, min);
    if (!l) return NULL;
    pthread_once(&leak_once, leak_key_make);
    (void)pthread_setspecific(leak_key, (void *)1); /* the destructor runs at thread exit */
    leak_entry_t *e = &t_leak[t_leak_next++ % LEAK_CACHE];
    al_leak_free(e->l);
    free(e->prompt);
    e->prompt = al_malloc(len);
    memcpy(e->prompt, prompt, len);
    e->len = len;
    e->min = min;
    e->l = l;
    return al_leak_clone(l);
}

/* --- helpers -------------------------------------------------------------- */

static const al_guard_policy_t *policy_of(const al_ctx_t *c)
{
    return c->agent ? c->agent->guard : NULL;
}

static const char *ent_name(const al_gctx_t *g, unsigned e)
{
    if (e == LEAK_ENTITY) return "SYSTEM_PROMPT";
    const char *n = al_scanner_entity_name(g->pol->sc, e);
    return n ? n : "?";
}

static void buf_cap_append(al_buf_t *b, size_t cap, const char *p, size_t len)
{
    if (b->len >= cap) return;
    if (len > cap - b->len) len = cap - b->len;
    if (b->len) al_buf_putc(b, '\n');
    al_buf_append(b, p, len);
}

/* Keep the last cap bytes: the newest messages are where an attack lands. */
static void buf_tail_append(al_buf_t *b, size_t cap, const char *p, size_t len)
{
    if (len >= cap) {
        al_buf_reset(b);
        al_buf_append(b, p + len - cap, cap);
        return;
    }
    if (b->len + len + 1 > cap) {
        size_t drop = b->len + len + 1 - cap;
        memmove(b->p, b->p + drop, b->len - drop);
        b->len -= drop;
    }
    if (b->len) al_buf_putc(b, '\n');
    al_buf_append(b, p, len);
}

/* The entity types of one direction that hit `block` (or escalate). */
static void ent_list(const al_gctx_t *g, int dir, char *out, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    size_t ne = al_scanner_n_entities(g->pol->sc);
    for (size_t e = 0; e < ne && e < AL_GUARD_MAX_ENT; e++)
        if (g->ent_block[dir][e] && o + 2 < n)
            o += (size_t)snprintf(out + o, n - o, "%s%s", o ? ", " : "", ent_name(g, (unsigned)e));
}

/* --- hooks ------------------------------------------------------------------ */

static bool role_is_input(al_text_role_t r)
{
    return r != AL_TR_OUT_CONTENT && r != AL_TR_OUT_TOOL_ARGS;
}

static int h_scan(void *ud, al_text_role_t role, const char *text, size_t len, const al_find_t **f,
                  size_t *n)
{
    al_gctx_t *g = ud;
    const al_guard_policy_t *p = g->pol;
    unsigned what = 0;
    *f = g->res.finds;
    *n = 0;
    if (role_is_input(role)) {
        if (p->in.pii) what |= AL_SCAN_PII;
        if (p->in.injection != AL_GA_ALLOW &&
            (role == AL_TR_USER || role == AL_TR_TOOL_RESULT || role == AL_TR_EMBED))
            what |= AL_SCAN_INJECT;
        if (role == AL_TR_SYSTEM && (p->out.leakage != AL_GA_ALLOW))
            buf_cap_append(&g->sys, SYS_TEXT_MAX, text, len);
    } else if (p->out.pii) {
        what |= AL_SCAN_PII;
    }
    if (what) {
        int rc = al_scanner_scan(p->sc, text, len, what, &g->res);
        if (rc != AL_OK) return rc;
        if (what & AL_SCAN_INJECT) {
            g->inj_scanned = true;
            if (g->res.inj.score > g->inj_score) g->inj_score = g->res.inj.score;
            g->inj_fam |= g->res.inj.families;
        }
        *n = g->res.n_finds;
        if (g->res.n_dropped) {
            /* More values than one scan keeps: scan on from the last kept
             * one, so none passes unseen. */
            al_buf_reset(&g->more);
            al_buf_append(&g->more, g->res.finds, g->res.n_finds * sizeof(al_find_t));
            size_t off = g->res.finds[g->res.n_finds - 1].end;
            while (g->res.n_dropped && off < len) {
                rc = al_scanner_scan(p->sc, text + off, len - off, AL_SCAN_PII, &g->res);
                if (rc != AL_OK) return rc;
                for (size_t i = 0; i < g->res.n_finds; i++) {
                    al_find_t x = g->res.finds[i];
                    x.start += (uint32_t)off;
                    x.end += (uint32_t)off;
                    al_buf_append(&g->more, &x, sizeof x);
                }
                if (!g->res.n_finds) break;
                off += g->res.finds[g->res.n_finds - 1].end;
            }
            if (g->more.err) return AL_ETOOBIG; /* fails closed */
            *f = (const al_find_t *)(const void *)g->more.p;
            *n = g->more.len / sizeof(al_find_t);
            g->res.n_finds = 0;
            return AL_OK;
        }
    } else {
        g->res.n_finds = 0;
    }
    /* A non-streamed answer that repeats the system prompt: its span is one
     * more finding (the walk keeps findings sorted and apart). */
    if (!role_is_input(role) && !g->gs && g->leak && role == AL_TR_OUT_CONTENT) {
        size_t s, e;
        if (al_leak_find(g->leak, text, len, &s, &e)) {
            g->leak_hit = true;
            if (p->out.leakage == AL_GA_REDACT) {
                /* Drop findings inside the span, insert it in order. */
                size_t k = 0, ins = g->res.n_finds;
                for (size_t i = 0; i < g->res.n_finds; i++) {
                    al_find_t *x = &g->res.finds[i];
                    if (x->end > s && x->start < e) continue;
                    if (ins == g->res.n_finds && x->start >= e) ins = k;
                    g->res.finds[k++] = *x;
                }
                if (ins > k) ins = k;
                if (k < AL_SCAN_MAX_FINDS) {
                    memmove(&g->res.finds[ins + 1], &g->res.finds[ins],
                            (k - ins) * sizeof g->res.finds[0]);
                    g->res.finds[ins] = (al_find_t){(uint32_t)s, (uint32_t)e, LEAK_ENTITY};
                    k++;
                }
                g->res.n_finds = k;
            }
        }
        *n = g->res.n_finds;
    }
    return AL_OK;
}

static int h_decide(void *ud, al_text_role_t role, const al_find_t *f, size_t n, bool *redact)
{
    al_gctx_t *g = ud;
    int dir = role_is_input(role) ? DIR_IN : DIR_OUT;
    const al_guard_dir_t *d = dir == DIR_IN ? &g->pol->in : &g->pol->out;
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        redact[i] = false;
        if (f[i].entity == LEAK_ENTITY) {
            redact[i] = true;
            continue;
        }
        unsigned e = f[i].entity < AL_GUARD_MAX_ENT ? f[i].entity : AL_GUARD_MAX_ENT - 1;
        al_gaction_t a = (al_gaction_t)d->ent[e];
        if (a == AL_GA_ALLOW) continue;
        g->ent_n[dir][e]++;
        if (a == AL_GA_REDACT) redact[i] = true;
        else if (a == AL_GA_BLOCK || (a == AL_GA_ESCALATE && (dir == DIR_OUT && g->gs))) {
            g->ent_block[dir][e] = true;
            g->pii_block[dir] = true;
            if (dir == DIR_OUT) stop = true;
        } else if (a == AL_GA_ESCALATE) {
            g->ent_block[dir][e] = true;
            g->pii_escalate[dir] = true;
        }
    }
    /* Input: the whole request is judged at the end (every entity type is
     * named); output: stop before the text is released. */
    return stop ? AL_ESTATE : AL_OK;
}

static void h_released(void *ud, al_text_role_t role, const char *text, size_t len)
{
    al_gctx_t *g = ud;
    /* Model-based detectors see the request as the provider will: redacted. */
    if (g->pol->in.n_det && (role == AL_TR_USER || role == AL_TR_TOOL_RESULT || role == AL_TR_EMBED))
        buf_tail_append(&g->cls_text, CLS_TEXT_MAX, text, len);
    if (role != AL_TR_OUT_CONTENT) return;
    if (g->gs && g->leak && !g->leak_hit && al_leak_feed(g->leak, text, len)) g->leak_hit = true;
    /* One streamed answer is checked at its end; with n > 1 the choices'
     * texts interleave and are not checked (documented). */
    if (g->gs && (g->req_schema || g->pol->out.schema_doc) && g->c->rq.n <= 1 &&
        g->out_text.len < OUT_TEXT_MAX)
        al_buf_append(&g->out_text, text, len);
}

static const al_guard_hooks_t hooks = {h_scan, h_decide, h_released};

/* --- the header and the event ---------------------------------------------- */

static void put_header(al_ctx_t *c)
{
    al_gctx_t *g = c->g;
    size_t o = 0;
    char *h = c->guard_hdr;
    size_t n = sizeof c->guard_hdr;
    bool pii = false, flag = true;
    al_gaction_t strongest = AL_GA_FLAG;
    for (size_t e = 0; e < AL_GUARD_MAX_ENT; e++)
        if (g->ent_n[DIR_IN][e]) {
            pii = true;
            al_gaction_t a = (al_gaction_t)g->pol->in.ent[e];
            if (a > strongest) strongest = a;
        }
    o = (size_t)snprintf(h, n, "x-airlock-guardrails: ");
    size_t base = o;
    if (pii) o += (size_t)snprintf(h + o, n - o, "pii=%s", al_gaction_name(strongest));
    if (g->inj_scanned && g->inj_score >= g->pol->in.inj_threshold)
        o += (size_t)snprintf(h + o, n - o, "%sinjection=%s", o > base ? "; " : "",
                              al_gaction_name(g->pol->in.injection));
    for (size_t i = 0; i < g->pol->in.n_det && o < n; i++)
        if (g->det[i].done && (g->det[i].v.flagged || g->det[i].v.rc != AL_OK))
            o += (size_t)snprintf(h + o, n - o, "%s%s=%s", o > base ? "; " : "",
                                  g->pol->in.det[i].name,
                                  g->det[i].v.rc != AL_OK ? "error"
                                                          : al_gaction_name(g->pol->in.det[i].action));
    (void)flag;
    if (o == base) h[0] = '\0';
}

static void ev_sep(al_buf_t *b, bool *first)
{
    if (!*first) al_buf_putc(b, ',');
    *first = false;
}

static void ev_dir(al_gctx_t *g, al_buf_t *b, int dir, bool *any)
{
    const al_guard_dir_t *d = dir == DIR_IN ? &g->pol->in : &g->pol->out;
    bool first = true;
    unsigned shard = g->c->w->idx;
    al_metrics_t *m = g->c->w->gw->metrics;
    size_t start = b->len;
    al_buf_puts(b, *any ? ",\"" : "\"");
    al_buf_puts(b, dir == DIR_IN ? "input\":[" : "output\":[");
    for (size_t e = 0; e < AL_GUARD_MAX_ENT; e++) {
        if (!g->ent_n[dir][e]) continue;
        al_gaction_t a = (al_gaction_t)d->ent[e];
        if (a == AL_GA_ESCALATE && dir == DIR_OUT && g->gs) a = AL_GA_BLOCK;
        ev_sep(b, &first);
        al_buf_puts(b, "{\"detector\":\"pii\",\"entity\":");
        al_buf_json_str(b, ent_name(g, (unsigned)e), strlen(ent_name(g, (unsigned)e)));
        al_buf_printf(b, ",\"count\":%u,\"action\":\"%s\"}", g->ent_n[dir][e], al_gaction_name(a));
        al_metrics_guard(m, shard, (unsigned)dir, AL_MG_PII, a, 1);
        al_metrics_guard_entity(m, shard, (unsigned)dir, e < AL_ENT_CUSTOM ? (unsigned)e : 7,
                                g->ent_n[dir][e]);
    }
    if (dir == DIR_IN && g->inj_scanned && (g->inj_score > 0 || g->inj_fam)) {
        bool fired = g->inj_score >= d->inj_threshold;
        al_gaction_t a = fired ? d->injection : AL_GA_ALLOW;
        ev_sep(b, &first);
        al_buf_printf(b, "{\"detector\":\"injection\",\"score\":%.3f,\"features\":[", g->inj_score);
        bool f1 = true;
        for (unsigned k = 0; k < AL_INJ_NFAM; k++)
            if (g->inj_fam & (1u << k)) {
                ev_sep(b, &f1);
                al_buf_printf(b, "\"%s\"", al_inject_family_name(k));
            }
        al_buf_printf(b, "],\"action\":\"%s\"}", al_gaction_name(a));
        if (fired) al_metrics_guard(m, shard, (unsigned)dir, AL_MG_INJECTION, a, 1);
    }
    if (dir == DIR_IN)
        for (size_t i = 0; i < d->n_det; i++) {
            const gdet_t *x = &g->det[i];
            if (!x->done) continue;
            ev_sep(b, &first);
            al_buf_puts(b, "{\"detector\":");
            al_buf_json_str(b, d->det[i].name, strlen(d->det[i].name));
            al_classifier_info_t inf;
            al_classifier_get_info(d->det[i].cl, &inf);
            al_gaction_t a = AL_GA_ALLOW;
            if (x->v.rc != AL_OK) {
                a = inf.on_error_block ? AL_GA_BLOCK : AL_GA_ALLOW;
                al_buf_printf(b, ",\"error\":\"%s\"",
                              x->v.rc == AL_ETIMEDOUT ? "timeout"
                              : x->v.rc == AL_EPARSE  ? "bad_answer"
                                                      : "unavailable");
            } else {
                al_buf_printf(b, ",\"score\":%.3f", x->v.score);
                if (x->v.flagged) a = d->det[i].action;
            }
            al_buf_printf(b, ",\"ms\":%.1f,\"action\":\"%s\"}", x->v.ms, al_gaction_name(a));
            if (a != AL_GA_ALLOW) al_metrics_guard(m, shard, (unsigned)dir, AL_MG_CLASSIFIER, a, 1);
        }
    if (dir == DIR_OUT && g->leak_hit) {
        ev_sep(b, &first);
        al_buf_printf(b, "{\"detector\":\"leakage\",\"action\":\"%s\"}",
                      al_gaction_name(d->leakage));
        al_metrics_guard(m, shard, (unsigned)dir, AL_MG_LEAKAGE, d->leakage, 1);
    }
    if (dir == DIR_OUT && g->schema_checked && (g->schema_bad || g->schema_retries)) {
        ev_sep(b, &first);
        al_buf_printf(b, "{\"detector\":\"schema\",\"valid\":%s,\"retries\":%u,\"action\":\"%s\"}",
                      g->schema_bad ? "false" : "true", g->schema_retries,
                      al_gaction_name(d->schema));
        al_metrics_guard(m, shard, (unsigned)dir, AL_MG_SCHEMA, d->schema, 1);
    }
    if (first) {
        b->len = start; /* nothing in this direction */
        return;
    }
    al_buf_putc(b, ']');
    *any = true;
}

/* --- lifecycle ---------------------------------------------------------------- */

static void gctx_free(al_gctx_t *g)
{
    for (size_t i = 0; i < AL_GUARD_MAX_DETECTORS; i++)
        if (g->det[i].job) al_classify_cancel(g->det[i].job);
    al_redact_map_free(g->map);
    al_buf_free(&g->cls_text);
    al_buf_free(&g->more);
    al_buf_free(&g->sys);
    al_buf_free(&g->out_text);
    al_leak_free(g->leak);
    al_schema_free(g->req_schema);
    al_gstream_free(g->gs);
    free(g);
}

void al__guard_finish(al_ctx_t *c)
{
    if (c->t_gout0 && !c->t_gout1) c->t_gout1 = al_now_ns();
    al_gctx_t *g = c->g;
    if (!g) return;
    c->g = NULL;
    al_buf_t b;
    al_buf_init(&b, sizeof c->ev.guardrails - 1);
    bool any = false;
    al_buf_putc(&b, '{');
    ev_dir(g, &b, DIR_IN, &any);
    ev_dir(g, &b, DIR_OUT, &any);
    if (g->gs && al_gstream_max_held(g->gs))
        al_buf_printf(&b, "%s\"hold_max_bytes\":%zu", any ? "," : "", al_gstream_max_held(g->gs)),
            any = true;
    al_buf_putc(&b, '}');
    if (any && !b.err) AL_EVENT_SET(&c->ev, guardrails, b.p, b.len);
    else if (any) AL_EVENT_SET(&c->ev, guardrails, "{\"truncated\":true}", 18);
    al_buf_free(&b);
    gctx_free(g);
}

/* --- the way in ------------------------------------------------------------------ */

static void answer_block(al_ctx_t *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void answer_block(al_ctx_t *c, const char *code, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    al__fail(c, 400, "guardrail_blocked", code, "rejected", "%s", msg);
}

/* The response_format's JSON schema (as JSON text) when it asks for
 * strict output, or NULL. */
static char *request_schema(al_ctx_t *c)
{
    char *out = NULL;
    if (!memmem(c->body, c->body_len, "json_schema", 11)) return NULL;
    if (al_json_depth(c->body, c->body_len) > 128) return NULL;
    char *tmp = al_malloc(c->body_len + 1);
    memcpy(tmp, c->body, c->body_len);
    tmp[c->body_len] = '\0';
    yajl_val root = yajl_tree_parse(tmp, NULL, 0);
    free(tmp);
    if (!root) return NULL;
    yajl_val rf = al_json_get(root, "response_format");
    yajl_val js = rf ? al_json_get(rf, "json_schema") : NULL;
    yajl_val ty = rf ? al_json_get(rf, "type") : NULL;
    yajl_val strict = js ? al_json_get(js, "strict") : NULL;
    yajl_val sch = js ? al_json_get(js, "schema") : NULL;
    if (ty && YAJL_IS_STRING(ty) && strcmp(ty->u.string, "json_schema") == 0 && strict &&
        YAJL_IS_TRUE(strict) && sch) {
        al_buf_t b;
        al_buf_init(&b, 256 * 1024);
        al_json_put(&b, sch);
        al_buf_putc(&b, '\0');
        if (!b.err) out = al_buf_take(&b, NULL);
        al_buf_free(&b);
    }
    yajl_tree_free(root);
    return out;
}

/* Compiling a request's schema may take long (Vectorscan patterns): it runs
 * on the thread pool, the request waits. */
typedef struct schema_job {
    uv_work_t work;
    al_ctx_t *c;
    char *json;
    al_schema_t *out;
} schema_job_t;

static void guard_scan(al_ctx_t *c);

static void schema_work(uv_work_t *wk)
{
    schema_job_t *j = wk->data;
    char err[160];
    if (al_schema_compile(j->json, strlen(j->json), &j->out, err, sizeof err) != AL_OK)
        j->out = NULL; /* a schema we cannot compile is the provider's to judge */
}

static void schema_after(uv_work_t *wk, int status)
{
    schema_job_t *j = wk->data;
    al_ctx_t *c = j->c;
    (void)status;
    c->w->jobs--;
    if (!c->finished && c->req && c->g) {
        c->g->req_schema = j->out;
        j->out = NULL;
        guard_scan(c);
    }
    al_schema_free(j->out);
    free(j->json);
    free(j);
    al__ctx_unhold(c);
}

static void guard_continue(al_ctx_t *c);

static void on_det_done(void *ud, const al_verdict_t *v)
{
    gdet_t *d = ud;
    al_gctx_t *g = d->g;
    d->v = *v;
    d->done = true;
    d->job = NULL;
    if (--g->pending == 0) guard_continue(g->c);
}

/* After the scan (and the detectors, when any): judge, then go on. */
static void guard_continue(al_ctx_t *c)
{
    al_gctx_t *g = c->g;
    const al_guard_dir_t *d = &g->pol->in;
    char ents[200];
    if (!c->req) return;
    put_header(c);
    if (g->pii_block[DIR_IN]) {
        ent_list(g, DIR_IN, ents, sizeof ents);
        answer_block(c, "pii", "blocked by guardrail 'pii' (%s) in the input", ents);
        return;
    }
    bool inj = g->inj_scanned && g->inj_score >= d->inj_threshold;
    if (inj && d->injection == AL_GA_BLOCK) {
        answer_block(c, "injection",
                     "blocked by guardrail 'injection': the input looks like a prompt injection "
                     "(score %.2f)",
                     g->inj_score);
        return;
    }
    for (size_t i = 0; i < d->n_det; i++) {
        const gdet_t *x = &g->det[i];
        if (!x->done) continue;
        al_classifier_info_t inf;
        al_classifier_get_info(d->det[i].cl, &inf);
        if (x->v.rc != AL_OK && inf.on_error_block) {
            answer_block(c, d->det[i].name,
                         "blocked by guardrail '%s': the detector was unavailable (%s)",
                         d->det[i].name, x->v.rc == AL_ETIMEDOUT ? "timeout" : "error");
            return;
        }
        if (x->v.rc == AL_OK && x->v.flagged && d->det[i].action == AL_GA_BLOCK) {
            answer_block(c, d->det[i].name, "blocked by guardrail '%s' (score %.2f)",
                         d->det[i].name, x->v.score);
            return;
        }
    }
    char reason[256] = "";
    if (g->pii_escalate[DIR_IN]) {
        ent_list(g, DIR_IN, ents, sizeof ents);
        snprintf(reason, sizeof reason, "guardrail pii: %s in the input", ents);
    } else if (inj && d->injection == AL_GA_ESCALATE) {
        snprintf(reason, sizeof reason, "guardrail injection: score %.2f", g->inj_score);
    } else {
        for (size_t i = 0; i < d->n_det && !reason[0]; i++)
            if (g->det[i].done && g->det[i].v.rc == AL_OK && g->det[i].v.flagged &&
                d->det[i].action == AL_GA_ESCALATE)
                snprintf(reason, sizeof reason, "guardrail %s: score %.2f", d->det[i].name,
                         g->det[i].v.score);
    }
    if (reason[0]) {
        al__escalate(c, reason);
        return;
    }
    al__route_begin(c);
}

void al__guard_begin(al_ctx_t *c)
{
    const al_guard_policy_t *p = policy_of(c);
    if (!p || c->kind == K_MODELS) {
        al__route_begin(c);
        return;
    }
    al_gctx_t *g = al_calloc(1, sizeof *g);
    g->c = c;
    g->pol = p;
    c->g = g;
    c->t_gin0 = al_now_ns();
    g->map = al_redact_map_new(p->sc);
    al_buf_init(&g->cls_text, CLS_TEXT_MAX + 16);
    al_buf_init(&g->more, 64u << 20);
    al_buf_init(&g->sys, SYS_TEXT_MAX + 16);
    al_buf_init(&g->out_text, OUT_TEXT_MAX);
    bool chat = c->kind == K_CHAT || c->kind == K_MESSAGES;
    char *sj = chat && p->out.schema != AL_GA_ALLOW ? request_schema(c) : NULL;
    if (sj) {
        schema_job_t *j = al_calloc(1, sizeof *j);
        j->c = c;
        j->json = sj;
        j->work.data = j;
        c->holds++;
        c->w->jobs++;
        if (uv_queue_work(&c->w->loop, &j->work, schema_work, schema_after) == 0) return;
        c->holds--;
        c->w->jobs--;
        free(sj);
        free(j);
    }
    guard_scan(c);
}

/* logprobs carry the answer's tokens outside the texts the output checks
 * rewrite: a request asking for them is refused while output redaction or
 * blocking is on, rather than leak what the checks would have removed. */
static bool wants_logprobs(const al_ctx_t *c)
{
    if (!memmem(c->body, c->body_len, "\"logprobs\"", 10)) return false;
    if (al_json_depth(c->body, c->body_len) > 128) return false;
    char *tmp = al_malloc(c->body_len + 1);
    memcpy(tmp, c->body, c->body_len);
    tmp[c->body_len] = '\0';
    yajl_val root = yajl_tree_parse(tmp, NULL, 0);
    free(tmp);
    yajl_val lp = root ? al_json_get(root, "logprobs") : NULL;
    bool yes = lp && YAJL_IS_TRUE(lp);
    yajl_tree_free(root);
    return yes;
}

/* The request's texts: scan, redact, then the model-based detectors. */
static void guard_scan(al_ctx_t *c)
{
    al_gctx_t *g = c->g;
    const al_guard_policy_t *p = g->pol;
    bool chat = c->kind == K_CHAT || c->kind == K_MESSAGES;
    bool rewrites = p->out.pii || p->in.reversible ||
                    (p->out.leakage != AL_GA_ALLOW && p->out.leakage != AL_GA_FLAG);
    if (chat && rewrites && wants_logprobs(c)) {
        al__fail(c, 400, "invalid_request_error", "logprobs_with_output_guardrails", "rejected",
                 "logprobs cannot be returned while output guardrails rewrite this agent's "
                 "answers");
        return;
    }
    if (p->any_input || (chat && p->out.leakage != AL_GA_ALLOW)) {
        al_buf_t out;
        bool changed = false;
        al_buf_init(&out, (size_t)c->body_len * 2 + 65536);
        g->dir = DIR_IN;
        int rc = al_redact_request(c->body, c->body_len,
                                   c->kind == K_EMBEDDINGS ? AL_WALK_EMBEDDINGS : AL_WALK_CHAT,
                                   g->map, &hooks, g, &out, &changed);
        if (rc != AL_OK && rc != AL_ESTATE) {
            al_buf_free(&out);
            if (rc == AL_ETOOBIG)
                al__fail(c, 413, "invalid_request_error", "request_too_large", "rejected",
                         "request too large after redaction");
            else if (rc == AL_EPARSE)
                al__fail(c, 400, "invalid_request_error", "invalid_request", "rejected",
                         "the request's messages could not be read for the guardrails");
            else
                al__fail(c, 500, "server_error", "guardrail_error", "error",
                         "the guardrails could not scan the request");
            return;
        }
        if (changed) {
            char err[160];
            size_t nl;
            char *nb = al_buf_take(&out, &nl);
            al_chatreq_t rq;
            if (al_chatreq_parse(nb, nl, &rq, err, sizeof err) != AL_OK) {
                free(nb);
                al__fail(c, 500, "server_error", "guardrail_error", "error",
                         "the redacted request could not be read back");
                return;
            }
            free(c->gbody);
            c->gbody = nb;
            c->body = nb;
            c->body_len = nl;
            c->rq = rq;
        }
        al_buf_free(&out);
        if (g->sys.len && p->out.leakage != AL_GA_ALLOW)
            g->leak = leak_for(g->sys.p, g->sys.len, p->out.leak_min);
    }
    /* Model-based detectors: only when nothing has decided already. */
    bool decided = g->pii_block[DIR_IN] ||
                   (g->inj_scanned && g->inj_score >= p->in.inj_threshold &&
                    p->in.injection == AL_GA_BLOCK);
    if (!decided && p->in.n_det && g->cls_text.len) {
        g->pending = 1; /* held until every job has started */
        for (size_t i = 0; i < p->in.n_det; i++) {
            g->det[i].g = g;
            g->det[i].started = true;
            g->pending++;
            int rc = al_classify_start(p->in.det[i].cl, c->w->up, c->cfg, g->cls_text.p,
                                       g->cls_text.len, on_det_done, &g->det[i], &g->det[i].job);
            if (rc != AL_OK) {
                g->det[i].job = NULL;
                g->det[i].done = true;
                g->det[i].v = (al_verdict_t){.rc = AL_EIO};
                g->pending--;
            }
        }
        if (--g->pending > 0) return; /* on_det_done continues */
    }
    guard_continue(c);
}

/* --- the way out ----------------------------------------------------------------- */

static void set_block(al_gctx_t *g, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_block(al_gctx_t *g, const char *code, const char *fmt, ...)
{
    va_list ap;
    g->blocked = true;
    snprintf(g->block_code, sizeof g->block_code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(g->block_msg, sizeof g->block_msg, fmt, ap);
    va_end(ap);
}

static const al_schema_t *schema_of(const al_gctx_t *g)
{
    if (g->pol->out.schema == AL_GA_ALLOW) return NULL;
    return g->req_schema ? g->req_schema : g->pol->out.schema_doc;
}

/* Validate an answer's text; false (and schema_err) when it fails. */
static bool schema_ok(al_gctx_t *g, const char *text, size_t len)
{
    const al_schema_t *s = schema_of(g);
    if (!s) return true;
    g->schema_checked = true;
    int rc = al_schema_validate(s, text, len, g->schema_err, sizeof g->schema_err);
    if (rc == AL_EPARSE) snprintf(g->schema_err, sizeof g->schema_err, "the answer is not JSON");
    g->schema_bad = rc != AL_OK;
    return rc == AL_OK;
}

/* Every choice's message content of a chat completion against the schema
 * (a choice without text content, a tool call, is not checked).  true when
 * all pass or the body cannot be read (the caller judges that). */
static bool body_choices_ok(al_gctx_t *g, const char *p, size_t len)
{
    if (al_json_depth(p, len) > 128) return true;
    char *tmp = al_malloc(len + 1);
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    yajl_val root = yajl_tree_parse(tmp, NULL, 0);
    free(tmp);
    if (!root) return true;
    bool ok = true;
    yajl_val ch = al_json_get(root, "choices");
    for (size_t i = 0; ok && ch && YAJL_IS_ARRAY(ch) && i < ch->u.array.len; i++) {
        yajl_val msg = al_json_get(ch->u.array.values[i], "message");
        yajl_val ct = msg ? al_json_get(msg, "content") : NULL;
        if (ct && YAJL_IS_STRING(ct)) ok = schema_ok(g, ct->u.string, strlen(ct->u.string));
    }
    yajl_tree_free(root);
    return ok;
}

int al__guard_body(al_ctx_t *c, const char **pp, size_t *plen, al_buf_t *own)
{
    if (c->g && !c->t_gout0) c->t_gout0 = al_now_ns();
    al_gctx_t *g = c->g;
    if (!g || !g->pol->any_output || c->kind == K_EMBEDDINGS) return AL_GB_OK;
    const al_guard_policy_t *p = g->pol;
    char ents[200];
    g->dir = DIR_OUT;
    g->pii_block[DIR_OUT] = g->pii_escalate[DIR_OUT] = false;
    memset(g->ent_block[DIR_OUT], 0, sizeof g->ent_block[DIR_OUT]);
    al_buf_t out;
    bool changed = false;
    al_buf_init(&out, c->cfg->server.max_response_bytes);
    int rc = al_redact_response(*pp, *plen, g->map, p->in.reversible, &hooks, g, &out, &changed);
    if (rc != AL_OK && rc != AL_ESTATE) {
        al_buf_free(&out);
        return rc == AL_EPARSE ? AL_GB_OK : AL_GB_ERROR; /* malformed bodies are judged later */
    }
    if (g->pii_block[DIR_OUT]) {
        al_buf_free(&out);
        ent_list(g, DIR_OUT, ents, sizeof ents);
        set_block(g, "pii", "blocked by guardrail 'pii' (%s) in the output", ents);
        return AL_GB_BLOCK;
    }
    if (g->leak_hit && (p->out.leakage == AL_GA_BLOCK || p->out.leakage == AL_GA_ESCALATE)) {
        al_buf_free(&out);
        set_block(g, "leakage", "blocked by guardrail 'leakage': the answer repeats the system "
                                "prompt");
        return p->out.leakage == AL_GA_ESCALATE ? AL_GB_ESCALATE : AL_GB_BLOCK;
    }
    if (g->pii_escalate[DIR_OUT]) {
        al_buf_free(&out);
        ent_list(g, DIR_OUT, ents, sizeof ents);
        set_block(g, "pii", "guardrail pii: %s in the output", ents);
        return AL_GB_ESCALATE;
    }
    if (changed) {
        al_buf_free(own);
        *own = out;
        *pp = own->p;
        *plen = own->len;
    } else {
        al_buf_free(&out);
    }
    if (schema_of(g)) {
        bool ok = body_choices_ok(g, *pp, *plen);
        if (!ok) {
            al_gaction_t a = p->out.schema;
            set_block(g, "schema", "the answer does not match the requested schema: %s",
                      g->schema_err);
            if (a == AL_GA_RETRY && g->schema_retries == 0) {
                g->schema_retries++;
                return AL_GB_RETRY;
            }
            if (a == AL_GA_FLAG) return AL_GB_OK;
            set_block(g, "schema", "the answer does not match the requested schema: %s",
                      g->schema_err);
            return a == AL_GA_ESCALATE ? AL_GB_ESCALATE : AL_GB_INVALID;
        }
        g->schema_bad = false;
    }
    return AL_GB_OK;
}

static int emit(void *eud, const char *json, size_t len)
{
    return al__emit_chunk(eud, json, len);
}

static bool stream_filtered(const al_guard_policy_t *p, const al_gctx_t *g)
{
    return p->out.pii || p->in.reversible || g->leak || schema_of(g);
}

int al__guard_chunk(al_ctx_t *c, const char *json, size_t len)
{
    if (c->g && !c->t_gout0) c->t_gout0 = al_now_ns();
    al_gctx_t *g = c->g;
    if (!g || !stream_filtered(g->pol, g)) return al__emit_chunk(c, json, len);
    if (g->blocked) return AL_GUARD_STOP;
    if (!g->gs) {
        g->gs = al_gstream_new(g->map, g->pol->in.reversible, &hooks, g, g->pol->stream_window);
        if (!g->gs) return -1;
    }
    g->gs_used = true;
    g->dir = DIR_OUT;
    int rc = al_gstream_chunk(g->gs, json, len, emit, c);
    if (rc == AL_ESTATE || g->pii_block[DIR_OUT]) {
        char ents[200];
        ent_list(g, DIR_OUT, ents, sizeof ents);
        set_block(g, "pii", "blocked by guardrail 'pii' (%s) in the output", ents);
        return AL_GUARD_STOP;
    }
    if (rc == AL_EPARSE) return -2;
    if (rc != AL_OK) return rc < 0 ? rc : -1;
    if (g->leak_hit && g->pol->out.leakage != AL_GA_FLAG && g->pol->out.leakage != AL_GA_ALLOW) {
        set_block(g, "leakage", "blocked by guardrail 'leakage': the answer repeats the system "
                                "prompt");
        return AL_GUARD_STOP;
    }
    return 0;
}

int al__guard_done(al_ctx_t *c)
{
    al_gctx_t *g = c->g;
    if (!g || !g->gs) return 0;
    if (g->blocked) return AL_GUARD_STOP;
    int rc = al_gstream_flush(g->gs, emit, c);
    if (rc == AL_ESTATE || g->pii_block[DIR_OUT]) {
        char ents[200];
        ent_list(g, DIR_OUT, ents, sizeof ents);
        set_block(g, "pii", "blocked by guardrail 'pii' (%s) in the output", ents);
        return AL_GUARD_STOP;
    }
    if (rc != AL_OK) return rc == AL_EPARSE ? -2 : -1;
    if (g->leak_hit && g->pol->out.leakage != AL_GA_FLAG && g->pol->out.leakage != AL_GA_ALLOW) {
        set_block(g, "leakage", "blocked by guardrail 'leakage': the answer repeats the system "
                                "prompt");
        return AL_GUARD_STOP;
    }
    if (schema_of(g) && g->out_text.len && !schema_ok(g, g->out_text.p, g->out_text.len) &&
        g->pol->out.schema != AL_GA_FLAG) {
        /* Too late to retry a stream: the client gets an error instead of [DONE]. */
        set_block(g, "schema", "the answer does not match the requested schema: %s",
                  g->schema_err);
        return AL_GUARD_STOP;
    }
    return 0;
}

bool al__guard_blocked(const al_ctx_t *c, const char **type, const char **code, const char **msg)
{
    const al_gctx_t *g = c->g;
    if (!g || !g->blocked) return false;
    bool schema = strcmp(g->block_code, "schema") == 0;
    *type = schema ? "invalid_output" : "guardrail_blocked";
    *code = g->block_code;
    *msg = g->block_msg;
    return true;
}

void al__guard_attempt_reset(al_ctx_t *c)
{
    al_gctx_t *g = c->g;
    if (!g || c->stream_started) return;
    al_gstream_free(g->gs);
    g->gs = NULL;
    al_buf_reset(&g->out_text);
    g->blocked = false;
    g->block_code[0] = g->block_msg[0] = '\0';
    g->pii_block[DIR_OUT] = g->pii_escalate[DIR_OUT] = false;
    memset(g->ent_block[DIR_OUT], 0, sizeof g->ent_block[DIR_OUT]);
    memset(g->ent_n[DIR_OUT], 0, sizeof g->ent_n[DIR_OUT]);
    g->leak_hit = false;
    if (g->leak && g->gs_used) {
        /* A stream fed the last one: the feed state starts over. */
        al_leak_free(g->leak);
        g->leak = g->sys.len ? leak_for(g->sys.p, g->sys.len, g->pol->out.leak_min) : NULL;
    }
    g->gs_used = false;
}
