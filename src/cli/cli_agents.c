/* cli_agents.c - `airlock agents list | show | permissions`: the agent
 * inventory (notes/policy.md) with live figures, from the command line.
 *
 * Every subcommand asks policy/inventory.c for the same JSON the admin API
 * serves and either prints it as is (--json, one document and a newline) or
 * parses it back (yajl_tree) and renders it for people: list as one table
 * row per agent, show as a field-per-line view with the agent's keys in a
 * table, permissions as the allow-list with its 30-day use, unused entries
 * flagged, followed by the names used that are no longer allowed.  So the
 * CLI and the API can never disagree about a figure.  Whatever comes from the
 * configuration or the store is printed with control characters replaced
 * (the table helpers do that for cells; print_field for the rest).  An agent
 * the configuration does not declare exits 1, a usage error 2. */
#include "cli/cli.h"
#include "policy/inventory.h"
#include "util/common.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define JSON_MAX (64u << 20)

static void usage_agents(FILE *f)
{
    fputs("usage: airlock agents list        --config FILE [--json]\n"
          "       airlock agents show        --config FILE NAME [--json]\n"
          "       airlock agents permissions --config FILE NAME [--json]\n"
          "\n"
          "list shows every agent the configuration declares with its figures of the\n"
          "last 24 hours (requests, error rate, p95 latency against the SLA), today's\n"
          "spend against the daily budget, the review status and the active keys.  show\n"
          "prints everything about one agent; permissions puts its allowed models and\n"
          "routes against their use in the last 30 days (unused ones flagged) and lists\n"
          "names it used that are no longer allowed.  --json prints what the admin API\n"
          "answers.  --config defaults to $AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

static int usage_err(void)
{
    usage_agents(stderr);
    return 2;
}

/* --- reading the inventory JSON ---------------------------------------------- */

static yajl_val jget(yajl_val obj, const char *k1, const char *k2)
{
    const char *path[] = {k1, k2, NULL};
    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

static const char *jstr(yajl_val obj, const char *k1, const char *k2)
{
    yajl_val v = jget(obj, k1, k2);
    return YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

static bool jnum(yajl_val obj, const char *k1, const char *k2, double *out)
{
    yajl_val v = jget(obj, k1, k2);
    if (!YAJL_IS_DOUBLE(v)) return false;
    *out = YAJL_GET_DOUBLE(v);
    return true;
}

static bool jtrue(yajl_val obj, const char *k1, const char *k2)
{
    return YAJL_IS_TRUE(jget(obj, k1, k2));
}

/* --- formatting ------------------------------------------------------------------ */

static void fmt_usd(double v, char *out, size_t n)
{
    if (v != 0 && fabs(v) < 0.01) snprintf(out, n, "$%.4f", v);
    else snprintf(out, n, "$%.2f", v);
}

/* A count: whole number or "-". */
static void fmt_count(yajl_val obj, const char *k1, const char *k2, char *out, size_t n)
{
    double v;
    if (jnum(obj, k1, k2, &v)) snprintf(out, n, "%.0f", v);
    else snprintf(out, n, "-");
}

static size_t active_keys(yajl_val a)
{
    yajl_val keys = jget(a, "keys", NULL);
    size_t n = 0;
    if (!YAJL_IS_ARRAY(keys)) return 0;
    for (size_t i = 0; i < keys->u.array.len; i++) {
        const char *st = jstr(keys->u.array.values[i], "status", NULL);
        if (st && strcmp(st, "active") == 0) n++;
    }
    return n;
}

static const char *review_text(yajl_val a)
{
    if (jtrue(a, "review", "overdue")) return "overdue";
    if (!jstr(a, "review", "last")) return "never";
    return "ok";
}

/* "850/3000", "-/3000", "850/-", "-", and " over" when past the SLA if mark. */
static void p95_text(yajl_val a, bool mark, char *out, size_t n)
{
    double p95 = 0, sla = 0;
    bool hp = jnum(a, "live", "p95_latency_ms_24h", &p95);
    bool hs = jnum(a, "sla", "p95_latency_ms", &sla);
    char ps[32], ss[32];
    if (!hp && !hs) {
        snprintf(out, n, "-");
        return;
    }
    if (hp) snprintf(ps, sizeof ps, "%.0f", p95);
    else snprintf(ps, sizeof ps, "-");
    if (hs) snprintf(ss, sizeof ss, "%.0f", sla);
    else snprintf(ss, sizeof ss, "-");
    yajl_val ok = jget(a, "live", "p95_ok");
    int w = snprintf(out, n, "%s/%s%s", ps, ss, mark && YAJL_IS_FALSE(ok) ? " over" : "");
    if (w < 0 || (size_t)w >= n) snprintf(out, n, "?"); /* a cell too narrow */
}

/* "$1.23/$20.00", "$1.23/-". */
static void spend_text(yajl_val a, const char *spent_key, const char *budget_key, char *out,
                       size_t n)
{
    double spent = 0, budget = 0;
    char s[32], b[32];
    jnum(a, "live", spent_key, &spent);
    fmt_usd(spent, s, sizeof s);
    if (jnum(a, "budget", budget_key, &budget)) fmt_usd(budget, b, sizeof b);
    else snprintf(b, sizeof b, "-");
    snprintf(out, n, "%s/%s", s, b);
}

/* "1.5%", "-" without requests; " over" past the SLA's max_error_rate if mark. */
static void err_text(yajl_val a, bool mark, char *out, size_t n)
{
    double r, max;
    if (!jnum(a, "live", "error_rate_24h", &r)) {
        snprintf(out, n, "-");
        return;
    }
    bool over = jnum(a, "sla", "max_error_rate", &max) && r > max;
    snprintf(out, n, "%.1f%%%s", r * 100.0, mark && over ? " over" : "");
}

/* --- running the inventory ------------------------------------------------------- */

typedef int (*inv_fn)(const al_config_t *c, al_store_t *s, const char *agent, int64_t now,
                      al_buf_t *out);

/* Build the JSON with fn; exit code 0 with *doc parsed (and, for --json,
 * printed), 1 for an unknown agent or a store error. */
static int inventory(const char *prog, inv_fn fn, const al_config_t *cfg, al_store_t *st,
                     const char *agent, bool json, yajl_val *doc /* OUT */)
{
    al_buf_t b;
    char err[256];
    int rc;
    *doc = NULL;
    al_buf_init(&b, JSON_MAX);
    rc = fn(cfg, st, agent, al_wall_ms(), &b);
    if (rc == AL_ENOTFOUND) {
        fprintf(stderr, "%s: agent '%s' is not declared in %s\n", prog, agent ? agent : "",
                cfg->path);
        rc = 1;
        goto out;
    }
    if (rc != AL_OK || !b.p) {
        fprintf(stderr, "%s: cannot read the inventory: %s\n", prog,
                al_strerror(rc ? rc : AL_EIO));
        rc = 1;
        goto out;
    }
    if (json) {
        fwrite(b.p, 1, b.len, stdout);
        fputc('\n', stdout);
        rc = 0;
        goto out;
    }
    *doc = yajl_tree_parse(b.p, err, sizeof err);
    if (!YAJL_IS_OBJECT(*doc)) {
        fprintf(stderr, "%s: the inventory is not a JSON object (%s)\n", prog, err);
        yajl_tree_free(*doc);
        *doc = NULL;
        rc = 1;
        goto out;
    }
    rc = 0;
out:
    al_buf_free(&b);
    return rc;
}

/* Parse flags (and at most one NAME when want_name); returns -1 to go on,
 * else the exit code. */
static int parse_common(const char *prog, int argc, char **argv, bool want_name,
                        const char **config, bool *json, const char **name)
{
    const al__cli_flag_t flags[] = {
        {"--config", "-c", config, NULL},
        {"--json", NULL, NULL, json},
    };
    const char *pos[1];
    size_t npos;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos,
                           want_name ? 1 : 0, &npos);
    if (rc == 1) {
        usage_agents(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (want_name) {
        if (npos != 1 || !*pos[0]) {
            fprintf(stderr, "%s: which agent? give its name (see airlock agents list)\n",
                    prog);
            return usage_err();
        }
        *name = pos[0];
    }
    return -1;
}

static int finish(int rc)
{
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) rc = 1;
    return rc;
}

/* --- list ------------------------------------------------------------------------ */

static int agents_list(int argc, char **argv)
{
    static const char prog[] = "airlock agents list";
    static const char *const heads[] = {"NAME",    "OWNER",  "TEAM",
                                        "ENV",     "REQ_24H", "ERR%",
                                        "P95/SLA", "SPEND_TODAY/BUDGET", "REVIEW",
                                        "KEYS",    "KILLED"};
    const char *config = NULL;
    bool json = false;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    yajl_val doc = NULL;
    int rc = parse_common(prog, argc, argv, false, &config, &json, NULL);
    if (rc >= 0) return rc;
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    rc = inventory(prog, al_inventory_list_json, cfg, st, NULL, json, &doc);
    if (rc || json) goto out;
    yajl_val data = jget(doc, "data", NULL);
    size_t n = YAJL_IS_ARRAY(data) ? data->u.array.len : 0;
    if (n == 0) {
        fprintf(stderr, "no agents in %s\n", cfg->path);
        goto out;
    }
    al__cli_table_t t;
    al__cli_table_init(&t, stdout, AL_ARRAY_LEN(heads), heads, "llllrrrrlrl");
    for (size_t i = 0; i < n; i++) {
        yajl_val a = data->u.array.values[i];
        char req[32], errp[32], p95[64], spend[64], keys[32];
        const char *killed = jstr(a, "killed", "scope");
        fmt_count(a, "live", "requests_24h", req, sizeof req);
        err_text(a, true, errp, sizeof errp);
        p95_text(a, true, p95, sizeof p95);
        spend_text(a, "spend_today_usd", "daily_usd", spend, sizeof spend);
        snprintf(keys, sizeof keys, "%zu", active_keys(a));
        const char *name = jstr(a, "name", NULL), *owner = jstr(a, "owner", NULL),
                   *team = jstr(a, "team", NULL), *env = jstr(a, "environment", NULL);
        const char *cells[] = {name ? name : "?", owner ? owner : "-", team ? team : "-",
                               env ? env : "-",  req,   errp, p95, spend, review_text(a), keys,
                               killed ? killed : "-"};
        al__cli_table_row(&t, cells);
    }
    al__cli_table_end(&t);
out:
    yajl_tree_free(doc);
    al_store_close(st);
    al_config_unref(cfg);
    return finish(rc);
}

/* --- show ------------------------------------------------------------------------ */

static void print_field(FILE *f, const char *name, const char *v)
{
    fprintf(f, "%-14s ", name);
    for (const char *p = v && *v ? v : "-"; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f);
    }
    fputc('\n', f);
}

/* One spend line of `agents show`: live.SPENT against budget.LIMIT with
 * live.PCT, or "(no PERIOD budget)" when the agent has none. */
static void print_spend(FILE *f, yajl_val a, const char *label, const char *spent_key,
                        const char *limit_key, const char *pct_key, const char *period)
{
    char line[512], x[64], y[64];
    double v = 0, lim;
    jnum(a, "live", spent_key, &v);
    fmt_usd(v, x, sizeof x);
    if (jnum(a, "budget", limit_key, &lim)) {
        double pct = 0;
        fmt_usd(lim, y, sizeof y);
        jnum(a, "live", pct_key, &pct);
        snprintf(line, sizeof line, "%s of %s (%.0f%%)", x, y, pct);
    } else {
        snprintf(line, sizeof line, "%s (no %s budget)", x, period);
    }
    print_field(f, label, line);
}

/* A JSON array of strings as "a, b, c". */
static void join(yajl_val arr, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    if (!YAJL_IS_ARRAY(arr)) return;
    for (size_t i = 0; i < arr->u.array.len && len < n; i++) {
        const char *s = YAJL_GET_STRING(arr->u.array.values[i]);
        int w = snprintf(out + len, n - len, "%s%s", i ? ", " : "", s ? s : "?");
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* One configured value for people: kind '$' dollars, 'm' milliseconds, '%'
 * a percentage, 'r' a rate shown as a percentage, 'd' a duration in ms shown
 * in its largest whole unit, anything else a plain number. */
static void fmt_value(char kind, double v, char *out, size_t n)
{
    switch (kind) {
    case '$': fmt_usd(v, out, n); break;
    case 'm': snprintf(out, n, "%.0f ms", v); break;
    case '%': snprintf(out, n, "%.10g%%", v); break;
    case 'r': snprintf(out, n, "%.10g%%", v * 100.0); break;
    case 'd':
        if (v >= 3600000 && fmod(v, 3600000) == 0) snprintf(out, n, "%.0fh", v / 3600000);
        else if (v >= 60000 && fmod(v, 60000) == 0) snprintf(out, n, "%.0fm", v / 60000);
        else if (v >= 1000 && fmod(v, 1000) == 0) snprintf(out, n, "%.0fs", v / 1000);
        else snprintf(out, n, "%.0fms", v);
        break;
    default: snprintf(out, n, "%.10g", v);
    }
}

typedef struct pair {
    const char *key;           /* in the JSON object */
    const char *name;          /* shown */
    char kind;                 /* fmt_value */
} pair_t;

/* "rpm 600, tpm 200000, concurrent 20" from an object of numbers (nulls left
 * out); "-" when all are null. */
static void pairs(yajl_val obj, const pair_t *p, size_t np, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < np && len < n; i++) {
        double v;
        char val[64];
        if (!jnum(obj, p[i].key, NULL, &v)) continue;
        fmt_value(p[i].kind, v, val, sizeof val);
        int w = snprintf(out + len, n - len, "%s%s %s", len ? ", " : "", p[i].name, val);
        if (w < 0) break;
        len += (size_t)w;
    }
    if (!out[0]) snprintf(out, n, "-");
}

static void print_agent(FILE *f, yajl_val a)
{
    char line[2048], x[64], y[64], z[64];
    double v;
    print_field(f, "name", jstr(a, "name", NULL));
    print_field(f, "owner", jstr(a, "owner", NULL));
    print_field(f, "description", jstr(a, "description", NULL));
    print_field(f, "team", jstr(a, "team", NULL));
    print_field(f, "oncall", jstr(a, "oncall", NULL));
    print_field(f, "environment", jstr(a, "environment", NULL));
    print_field(f, "data class", jstr(a, "data_classification", NULL));
    join(jget(a, "models", NULL), line, sizeof line);
    print_field(f, "models", line);
    join(jget(a, "routes", NULL), line, sizeof line);
    print_field(f, "routes", line);

    static const pair_t sla[] = {{"p95_latency_ms", "p95", 'm'},
                                 {"availability_pct", "availability", '%'},
                                 {"max_error_rate", "max error rate", 'r'}};
    pairs(jget(a, "sla", NULL), sla, AL_ARRAY_LEN(sla), line, sizeof line);
    print_field(f, "sla", line);

    const char *last = jstr(a, "review", "last"), *due = jstr(a, "review", "due");
    if (jnum(a, "review", "every_days", &v)) snprintf(x, sizeof x, "every %.0f days", v);
    else snprintf(x, sizeof x, "no cadence");
    snprintf(line, sizeof line, "%s: last %s, %s%s%s", review_text(a), last ? last : "never", x,
             due ? ", due " : "", due ? due : "");
    print_field(f, "review", line);

    static const pair_t lims[] = {{"rpm", "rpm", 'n'}, {"tpm", "tpm", 'n'},
                                 {"concurrent", "concurrent", 'n'}};
    pairs(jget(a, "limits", NULL), lims, AL_ARRAY_LEN(lims), line, sizeof line);
    print_field(f, "limits", line);
    pairs(jget(a, "key_limits", NULL), lims, AL_ARRAY_LEN(lims), line, sizeof line);
    print_field(f, "key limits", line);
    static const pair_t bud[] = {{"daily_usd", "daily", '$'}, {"monthly_usd", "monthly", '$'}};
    pairs(jget(a, "budget", NULL), bud, AL_ARRAY_LEN(bud), line, sizeof line);
    print_field(f, "budget", line);
    static const pair_t ses[] = {{"max_requests", "max requests", 'n'},
                                 {"max_tokens", "max tokens", 'n'},
                                 {"max_cost_usd", "max cost", '$'},
                                 {"max_duration_ms", "max duration", 'd'},
                                 {"loop_threshold", "loop threshold", 'n'}};
    pairs(jget(a, "session", NULL), ses, AL_ARRAY_LEN(ses), line, sizeof line);
    print_field(f, "session", line);

    /* live figures */
    fmt_count(a, "live", "requests_24h", x, sizeof x);
    fmt_count(a, "live", "errors_24h", y, sizeof y);
    err_text(a, true, z, sizeof z);
    snprintf(line, sizeof line, "%s requests, %s errors (%s)", x, y, z);
    if (jnum(a, "live", "availability_pct_24h", &v)) {
        size_t n = strlen(line);
        snprintf(line + n, sizeof line - n, ", availability %.2f%%", v);
    }
    print_field(f, "last 24 h", line);
    p95_text(a, false, x, sizeof x);
    yajl_val ok = jget(a, "live", "p95_ok");
    snprintf(line, sizeof line, "%s ms%s", x,
             YAJL_IS_TRUE(ok) ? " (within SLA)" : YAJL_IS_FALSE(ok) ? " (OVER SLA)" : "");
    print_field(f, "p95 / SLA", line);
    print_spend(f, a, "spend today", "spend_today_usd", "daily_usd", "budget_today_pct", "daily");
    print_spend(f, a, "spend month", "spend_month_usd", "monthly_usd", "budget_month_pct",
                "monthly");

    yajl_val k = jget(a, "killed", NULL);
    if (YAJL_IS_OBJECT(k)) {
        const char *scope = jstr(k, "scope", NULL), *target = jstr(k, "target", NULL),
                   *reason = jstr(k, "reason", NULL), *by = jstr(k, "created_by", NULL),
                   *since = jstr(k, "created", NULL);
        snprintf(line, sizeof line, "YES by the %s%s%s switch%s: %s (since %s by %s)",
                 scope ? scope : "?", target ? " " : "", target ? target : "",
                 jtrue(k, "drain", NULL) ? ", draining" : "", reason ? reason : "-",
                 since ? since : "-", by ? by : "-");
        print_field(f, "killed", line);
    } else {
        print_field(f, "killed", "no");
    }

    yajl_val keys = jget(a, "keys", NULL);
    size_t nk = YAJL_IS_ARRAY(keys) ? keys->u.array.len : 0;
    if (nk == 0) {
        print_field(f, "keys", "none");
        return;
    }
    fprintf(f, "keys:\n");
    static const char *const heads[] = {"  ID",    "LABEL",   "STATUS",
                                        "CREATED", "EXPIRES", "LAST USED"};
    al__cli_table_t t;
    al__cli_table_init(&t, f, AL_ARRAY_LEN(heads), heads, "llllll");
    for (size_t i = 0; i < nk; i++) {
        yajl_val r = keys->u.array.values[i];
        const char *id = jstr(r, "id", NULL), *label = jstr(r, "label", NULL),
                   *status = jstr(r, "status", NULL), *created = jstr(r, "created", NULL),
                   *expires = jstr(r, "expires", NULL), *used = jstr(r, "last_used", NULL);
        snprintf(x, sizeof x, "  %s", id ? id : "?");
        const char *cells[] = {x,
                               label ? label : "-",
                               status ? status : "-",
                               created ? created : "-",
                               expires ? expires : "never",
                               used ? used : "never"};
        al__cli_table_row(&t, cells);
    }
    al__cli_table_end(&t);
}

static int agents_show(int argc, char **argv)
{
    static const char prog[] = "airlock agents show";
    const char *config = NULL, *name = NULL;
    bool json = false;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    yajl_val doc = NULL;
    int rc = parse_common(prog, argc, argv, true, &config, &json, &name);
    if (rc >= 0) return rc;
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    rc = inventory(prog, al_inventory_agent_json, cfg, st, name, json, &doc);
    if (rc == 0 && !json) print_agent(stdout, doc);
    yajl_tree_free(doc);
    al_store_close(st);
    al_config_unref(cfg);
    return finish(rc);
}

/* --- permissions ---------------------------------------------------------------------- */

static int agents_permissions(int argc, char **argv)
{
    static const char prog[] = "airlock agents permissions";
    static const char *const heads[] = {"NAME", "KIND", "REQ_30D", "UNUSED"};
    static const char *const heads2[] = {"NAME", "REQ_30D"};
    const char *config = NULL, *name = NULL;
    bool json = false;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    yajl_val doc = NULL;
    al__cli_table_t t;
    char req[32];
    int rc = parse_common(prog, argc, argv, true, &config, &json, &name);
    if (rc >= 0) return rc;
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    rc = inventory(prog, al_inventory_permissions_json, cfg, st, name, json, &doc);
    if (rc || json) goto out;

    yajl_val allowed = jget(doc, "allowed", NULL);
    size_t na = YAJL_IS_ARRAY(allowed) ? allowed->u.array.len : 0;
    if (na == 0) {
        fprintf(stderr, "agent %s is allowed no model or route\n", name);
    } else {
        al__cli_table_init(&t, stdout, AL_ARRAY_LEN(heads), heads, "llrl");
        for (size_t i = 0; i < na; i++) {
            yajl_val e = allowed->u.array.values[i];
            const char *n = jstr(e, "name", NULL), *kind = jstr(e, "kind", NULL);
            fmt_count(e, "requests_30d", NULL, req, sizeof req);
            const char *cells[] = {n ? n : "?", kind ? kind : "-", req,
                                   jtrue(e, "unused", NULL) ? "unused" : ""};
            al__cli_table_row(&t, cells);
        }
        al__cli_table_end(&t);
    }
    yajl_val extra = jget(doc, "used_not_allowed", NULL);
    size_t nx = YAJL_IS_ARRAY(extra) ? extra->u.array.len : 0;
    if (nx) {
        fputs("\nused in the last 30 days but not allowed now:\n", stdout);
        al__cli_table_init(&t, stdout, AL_ARRAY_LEN(heads2), heads2, "lr");
        for (size_t i = 0; i < nx; i++) {
            yajl_val e = extra->u.array.values[i];
            const char *n = jstr(e, "name", NULL);
            fmt_count(e, "requests_30d", NULL, req, sizeof req);
            const char *cells[] = {n ? n : "?", req};
            al__cli_table_row(&t, cells);
        }
        al__cli_table_end(&t);
    }
    double unused = 0;
    jnum(doc, "unused", NULL, &unused);
    fprintf(stderr, "%.0f of %zu allowed unused in the last 30 days\n", unused, na);
out:
    yajl_tree_free(doc);
    al_store_close(st);
    al_config_unref(cfg);
    return finish(rc);
}

int al_cli_agents(int argc, char **argv)
{
    if (argc < 1) return usage_err();
    const char *sub = argv[0];
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return agents_list(argc, argv);
    if (!strcmp(sub, "show")) return agents_show(argc, argv);
    if (!strcmp(sub, "permissions") || !strcmp(sub, "perms"))
        return agents_permissions(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_agents(stdout);
        return 0;
    }
    fprintf(stderr, "airlock agents: unknown subcommand '%s'\n", sub);
    return usage_err();
}
