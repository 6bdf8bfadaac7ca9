/* cli_events.c - `airlock events list`: the recorded requests, newest N
 * (default 100, --limit 0 for all) within the filters, printed oldest first,
 * either as one JSON object per line (al_event_to_json, for jq and scripts)
 * or as an aligned table for people.  --since takes a duration and means
 * "newer than now minus that". */
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
          "\n"
          "Lists the newest N recorded requests (default 100; --limit 0 for all), oldest\n"
          "first.  --since takes a duration (90s, 15m, 1h, 7d): only requests newer than\n"
          "now minus that.  --json prints one JSON object per line.  --config defaults to\n"
          "$AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

typedef struct ev_ctx {
    bool json;
    al_buf_t line;
    al__cli_table_t table;
    uint64_t n;
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

static int print_event(void *ud, const al_event_t *e)
{
    ev_ctx_t *c = ud;
    c->n++;
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
    const char *config = NULL, *agent = NULL, *since = NULL, *limit = NULL;
    bool json = false;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &agent, NULL},
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
    if (limit && al__cli_parse_limit(prog, limit, &flt.limit)) return 2;
    flt.agent = agent && *agent ? agent : NULL;

    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&c, 0, sizeof c);
    c.json = json;
    al_buf_init(&c.line, 1 << 16);
    if (!json) al__cli_table_init(&c.table, stdout, AL_ARRAY_LEN(heads), heads, "lllrlrrrr");
    rc = al_store_events_each(st, &flt, print_event, &c);
    if (!json) al__cli_table_end(&c.table);
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
