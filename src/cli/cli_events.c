/* cli_events.c - `airlock events list`: the recorded requests, newest N
 * (default 100, --limit 0 for all) within the filters, printed oldest first,
 * either as one JSON object per line (al_event_to_json, for jq and scripts)
 * or as an aligned table for people.  --since takes a duration and means
 * "newer than now minus that".  --session S shows one agent session as a
 * step-by-step timeline (all its events unless --limit): one line per event
 * with its step and context version, and a marker line wherever the context
 * version differs from the event before, so a change of the knowledge the
 * agent worked from stands out.  The timeline is printed as the store walks,
 * in fixed columns (a long value pushes its line wider) so that markers can
 * sit between rows and memory stays bounded. */
#include "cli/cli.h"
#include "store/event.h"
#include "util/common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 100

static void usage_events(FILE *f)
{
    fputs("usage: airlock events list --config FILE [--agent NAME] [--since 1h] [--limit N] "
          "[--json]\n"
          "       airlock events list --config FILE --session ID [--agent NAME] [--since 1h]\n"
          "                           [--limit N] [--json]\n"
          "\n"
          "Lists the newest N recorded requests (default 100; --limit 0 for all), oldest\n"
          "first.  --since takes a duration (90s, 15m, 1h, 7d): only requests newer than\n"
          "now minus that.  --json prints one JSON object per line.  --config defaults to\n"
          "$AIRLOCK_CONFIG, then airlock.yaml.\n"
          "\n"
          "--session ID shows the session's timeline (x-airlock-session-id), oldest first,\n"
          "all of its events unless --limit N (then the newest N): one line per event with\n"
          "its time, step (x-airlock-step, \"-\" if none), model, status, outcome, input\n"
          "and output tokens, latency and context version (x-airlock-context-version).\n"
          "Where the context version differs from the event before, a line\n"
          "  -- context version changed: kb-v1 -> kb-v2\n"
          "comes first.  With --json: the events only, one JSON object per line.\n",
          f);
}

typedef struct ev_ctx {
    bool json;
    bool timeline;             /* --session: the step-by-step form */
    al_buf_t line;
    al__cli_table_t table;
    uint64_t n;
    char prev_ctx[sizeof(((al_event_t *)0)->context_version)]; /* of the event before */
} ev_ctx_t;

static void fmt_tokens(int64_t v, char *out, size_t n)
{
    if (v < 0) snprintf(out, n, "-");
    else snprintf(out, n, "%" PRId64, v);
}

/* Dollars to 8 decimals without trailing zeros (keeping 2): 0.0000147, 12.50. */
static void fmt_cost(const al_event_t *e, char *out, size_t n)
{
    if (!e->cost_known) {
        snprintf(out, n, "-");
        return;
    }
    int len = snprintf(out, n, "%.8f", e->cost_usd);
    if (len <= 0 || (size_t)len >= n) return;
    char *dot = strchr(out, '.');
    if (!dot) return;
    char *end = out + len;
    while (end > dot + 3 && end[-1] == '0') end--;
    *end = '\0';
}

/* A value from a request header for a terminal: control bytes (escape
 * sequences, newlines) shown as '?', "-" when empty. */
static void fmt_safe(const char *v, size_t vsz, char *out, size_t n)
{
    size_t len = strnlen(v, vsz), o = 0;
    if (len == 0) {
        snprintf(out, n, "-");
        return;
    }
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    out[o] = '\0';
}

/* Timeline columns: the widths fit the usual values; a longer one only
 * pushes the rest of its line to the right. */
#define TL_FMT "%-24s  %-6s  %-24s  %6s  %-13s  %7s  %7s  %10s  %s\n"

static void timeline_head(void)
{
    printf(TL_FMT, "TIME", "STEP", "MODEL", "STATUS", "OUTCOME", "IN", "OUT", "LATENCY_MS",
           "CONTEXT");
}

static void timeline_row(ev_ctx_t *c, const al_event_t *e)
{
    char ts[32], step[sizeof e->step], model[sizeof e->model], outcome[sizeof e->outcome];
    char ctx[sizeof e->context_version], status[16], in[24], out[24], lat[32];
    size_t clen = strnlen(e->context_version, sizeof e->context_version);
    if (c->n > 1 && (strlen(c->prev_ctx) != clen ||
                     memcmp(c->prev_ctx, e->context_version, clen) != 0)) {
        char was[sizeof c->prev_ctx], now[sizeof e->context_version];
        fmt_safe(c->prev_ctx, sizeof c->prev_ctx, was, sizeof was);
        fmt_safe(e->context_version, sizeof e->context_version, now, sizeof now);
        printf("  -- context version changed: %s -> %s\n", c->prev_ctx[0] ? was : "(none)",
               clen ? now : "(none)");
    }
    memcpy(c->prev_ctx, e->context_version, clen);
    c->prev_ctx[clen] = '\0';

    al_event_fmt_ts(e->ts_ms, ts, sizeof ts);
    fmt_safe(e->step, sizeof e->step, step, sizeof step);
    fmt_safe(e->model, sizeof e->model, model, sizeof model);
    fmt_safe(e->outcome, sizeof e->outcome, outcome, sizeof outcome);
    fmt_safe(e->context_version, sizeof e->context_version, ctx, sizeof ctx);
    snprintf(status, sizeof status, "%d", e->status);
    fmt_tokens(e->input_tokens, in, sizeof in);
    fmt_tokens(e->output_tokens, out, sizeof out);
    snprintf(lat, sizeof lat, "%.1f", e->latency_ms);
    printf(TL_FMT, ts, step, model, status, outcome, in, out, lat, ctx);
}

static int print_event(void *ud, const al_event_t *e)
{
    ev_ctx_t *c = ud;
    c->n++;
    if (c->timeline && !c->json) {
        if (c->n == 1) timeline_head();
        timeline_row(c, e);
        return ferror(stdout) ? 1 : 0;
    }
    if (c->json) {
        al_buf_reset(&c->line);
        if (al_event_to_json(e, &c->line) >= 0 && al_buf_putc(&c->line, '\n') == AL_OK)
            fwrite(c->line.p, 1, c->line.len, stdout);
        return ferror(stdout) ? 1 : 0;
    }
    char ts[32], status[16], in[24], out[24], cost[32], lat[32];
    al_event_fmt_ts(e->ts_ms, ts, sizeof ts);
    snprintf(status, sizeof status, "%d", e->status);
    fmt_tokens(e->input_tokens, in, sizeof in);
    fmt_tokens(e->output_tokens, out, sizeof out);
    fmt_cost(e, cost, sizeof cost);
    snprintf(lat, sizeof lat, "%.1f", e->latency_ms);
    const char *cells[] = {ts,
                           e->agent[0] ? e->agent : "-",
                           e->model[0] ? e->model : "-",
                           status,
                           e->outcome[0] ? e->outcome : "-",
                           in,
                           out,
                           cost,
                           lat};
    al__cli_table_row(&c->table, cells);
    return ferror(stdout) ? 1 : 0;
}

static int events_list(int argc, char **argv)
{
    static const char prog[] = "airlock events list";
    static const char *const heads[] = {"TIME",  "AGENT",  "MODEL", "STATUS",    "OUTCOME",
                                        "IN",    "OUT",    "COST_USD", "LATENCY_MS"};
    const char *config = NULL, *agent = NULL, *since = NULL, *limit = NULL, *session = NULL;
    bool json = false;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &agent, NULL},
        {"--session", NULL, &session, NULL},
        {"--since", NULL, &since, NULL},
        {"--limit", "-n", &limit, NULL},
        {"--json", NULL, NULL, &json},
    };
    const char *pos[1];
    size_t npos;
    al_event_filter_t flt = {.limit = DEFAULT_LIMIT};
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    ev_ctx_t c;

    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_events(stdout);
        return 0;
    }
    if (rc) {
        usage_events(stderr);
        return 2;
    }
    if (since) {
        uint64_t d = 0;
        int64_t now = al_wall_ms();
        if (al_parse_duration_ms(since, &d) != AL_OK) {
            fprintf(stderr, "%s: --since '%s': expected a duration like 90s, 15m, 1h or 7d\n",
                    prog, since);
            return 2;
        }
        flt.since_ms = d >= (uint64_t)now ? 1 : now - (int64_t)d;
    }
    if (session) {
        size_t sl = strlen(session);
        if (sl == 0 || sl >= sizeof(((al_event_t *)0)->session_id)) {
            fprintf(stderr, "%s: --session: expected a session id of 1 to %zu bytes\n", prog,
                    sizeof(((al_event_t *)0)->session_id) - 1);
            return 2;
        }
        flt.session = session;
        flt.limit = 0; /* the whole session unless --limit */
    }
    if (limit && al__cli_parse_limit(prog, limit, &flt.limit)) return 2;
    flt.agent = agent && *agent ? agent : NULL;

    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&c, 0, sizeof c);
    c.json = json;
    c.timeline = session != NULL;
    bool table = !json && !c.timeline;
    al_buf_init(&c.line, 1 << 16);
    if (table) al__cli_table_init(&c.table, stdout, AL_ARRAY_LEN(heads), heads, "lllrlrrrr");
    rc = al_store_events_each(st, &flt, print_event, &c);
    if (table) al__cli_table_end(&c.table);
    al_buf_free(&c.line);
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot read events: %s\n", prog, al_strerror(rc));
        rc = 1;
    } else if (fflush(stdout) != 0 || ferror(stdout)) {
        rc = 1;
    } else {
        if (c.n == 0 && !json) fprintf(stderr, "no events\n");
        rc = 0;
    }
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

int al_cli_events(int argc, char **argv)
{
    if (argc < 1) {
        usage_events(stderr);
        return 2;
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return events_list(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_events(stdout);
        return 0;
    }
    fprintf(stderr, "airlock events: unknown subcommand '%s'\n", sub);
    usage_events(stderr);
    return 2;
}
