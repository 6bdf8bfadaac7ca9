/* cli_kill.c - `airlock kill`, `airlock unkill` and `airlock kill list`:
 * the kill switches of notes/policy.md from the command line.
 *
 * A switch has one scope (--agent, --team, --provider, --model naming a model
 * alias or a route, or --all) and is stored in the kill_switches table, where
 * the gateway's watcher picks it up within about a second.  `kill` needs a
 * reason (1 to 255 bytes of UTF-8 text, no control characters: it is shown to
 * the agents it stops) and refuses names the configuration does not declare,
 * unless --force says the running gateway's configuration differs from the
 * file at hand; setting a switch that is on already replaces its reason and
 * drain flag.  `unkill` clears one whatever the configuration says (a switch
 * on a since-removed name must stay clearable) and exits 1 when it was not
 * on.  Each change is recorded as an event (kind kill.set / kill.cleared,
 * actor "cli:" + --by or $USER, detail {"scope","target","reason","drain"},
 * agent = the target for an agent switch); the detail is built with
 * al_buf_json_str and the reason shortened, at a character boundary, when the
 * escaped whole would not fit the event's detail field.  `kill list` prints
 * the active switches, oldest first, as a table or one JSON object per line. */
#include "cli/cli.h"
#include "store/event.h"
#include "util/common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 255
#define BY_MAX 64
#define TARGET_SIZE sizeof(((al_kill_row_t *)0)->target)

static void usage_kill(FILE *f)
{
    fputs("usage: airlock kill   --config FILE SCOPE --reason TEXT [--drain] [--by NAME] "
          "[--force]\n"
          "       airlock unkill --config FILE SCOPE [--by NAME]\n"
          "       airlock kill list --config FILE [--json]\n"
          "\n"
          "SCOPE is exactly one of --agent NAME, --team NAME, --provider NAME,\n"
          "--model NAME (a model alias or a route) and --all.  A switch stops new requests\n"
          "of what it names with 403 agent_disabled and the reason, on every worker within\n"
          "a second, and survives restarts; in-flight streams end with an error unless\n"
          "--drain lets them finish.  kill refuses names the configuration does not declare\n"
          "unless --force (the running gateway's configuration may differ).  unkill exits 1\n"
          "when the switch was not on.  --by names who acted (default $USER).  --config\n"
          "defaults to $AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

static int usage_err(void)
{
    usage_kill(stderr);
    return 2;
}

/* --- scope ---------------------------------------------------------------- */

typedef struct scope_args {
    const char *agent, *team, *provider, *model;
    bool all;
} scope_args_t;

/* Exactly one scope flag with a usable target: 0 with *scope and *target
 * ("" for all), or 2 after saying why. */
static int pick_scope(const char *prog, const scope_args_t *a, const char **scope,
                      const char **target)
{
    int n = (a->agent != NULL) + (a->team != NULL) + (a->provider != NULL) +
            (a->model != NULL) + a->all;
    if (n != 1) {
        fprintf(stderr, "%s: give exactly one of --agent, --team, --provider, --model and "
                        "--all\n", prog);
        return 2;
    }
    *scope = a->all ? "all" : a->agent ? "agent" : a->team ? "team"
           : a->provider ? "provider" : "model";
    *target = a->all ? "" : a->agent ? a->agent : a->team ? a->team
            : a->provider ? a->provider : a->model;
    if (a->all) return 0;
    size_t len = strlen(*target);
    if (len == 0 || len >= TARGET_SIZE) {
        fprintf(stderr, "%s: the %s name must be 1 to %zu bytes\n", prog, *scope,
                TARGET_SIZE - 1);
        return 2;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)(*target)[i];
        if (ch < 0x20 || ch == 0x7f) {
            fprintf(stderr, "%s: the %s name must not contain control characters\n", prog,
                    *scope);
            return 2;
        }
    }
    return 0;
}

/* "agent support-bot", "all agents". */
static void describe(const char *scope, const char *target, char *out, size_t outsz)
{
    if (strcmp(scope, "all") == 0) snprintf(out, outsz, "all agents");
    else snprintf(out, outsz, "%s %s", scope, target);
}

/* Is target a name of that scope in the configuration? */
static bool declared(const al_config_t *c, const char *scope, const char *target)
{
    size_t len = strlen(target);
    if (strcmp(scope, "all") == 0) return true;
    if (strcmp(scope, "agent") == 0) return al_config_agent(c, target, len) != NULL;
    if (strcmp(scope, "provider") == 0) return al_config_provider(c, target, len) != NULL;
    if (strcmp(scope, "model") == 0)
        return al_config_model(c, target, len) || al_config_route(c, target, len);
    /* team: a `teams` entry, or without that section any agent's team */
    if (c->n_teams) return al_config_team(c, target, len) != NULL;
    for (size_t i = 0; i < c->n_agents; i++)
        if (c->agents[i].team && strcmp(c->agents[i].team, target) == 0) return true;
    return false;
}

/* Valid UTF-8 (no overlongs, surrogates or values above U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return false;
        if (n - i <= k) return false; /* cut short */
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static int check_reason(const char *prog, const char *reason)
{
    if (!reason || !*reason) {
        fprintf(stderr, "%s: --reason TEXT is required (it is shown to the agents stopped)\n",
                prog);
        return 2;
    }
    size_t n = strlen(reason);
    if (n > REASON_MAX) {
        fprintf(stderr, "%s: --reason is longer than %d bytes\n", prog, REASON_MAX);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f) {
            fprintf(stderr, "%s: --reason must not contain control characters\n", prog);
            return 2;
        }
    }
    if (!utf8_ok((const unsigned char *)reason, n)) {
        fprintf(stderr, "%s: --reason is not valid UTF-8 text\n", prog);
        return 2;
    }
    return 0;
}

static int check_by(const char *prog, const char *by)
{
    if (by && (!*by || strlen(by) > BY_MAX)) {
        fprintf(stderr, "%s: --by must be 1 to %d bytes\n", prog, BY_MAX);
        return 2;
    }
    return 0;
}

/* --- the change record ------------------------------------------------------ */

/* {"scope","target","reason","drain"} into out (the event's detail field),
 * the reason cut back a character at a time until the whole fits. */
static void kill_detail(const char *scope, const char *target, const char *reason, bool drain,
                        char *out, size_t outsz)
{
    al_buf_t b;
    size_t cut = strlen(reason);
    al_buf_init(&b, outsz - 1);
    for (;;) {
        al_buf_reset(&b);
        al_buf_puts(&b, "{\"scope\":");
        al_buf_json_str(&b, scope, strlen(scope));
        al_buf_puts(&b, ",\"target\":");
        if (*target) al_buf_json_str(&b, target, strlen(target));
        else al_buf_puts(&b, "null");
        al_buf_puts(&b, ",\"reason\":");
        al_buf_json_str(&b, reason, cut);
        al_buf_printf(&b, ",\"drain\":%s}", drain ? "true" : "false");
        if (!b.err || cut == 0) break;
        do cut--;
        while (cut > 0 && ((unsigned char)reason[cut] & 0xC0) == 0x80);
    }
    snprintf(out, outsz, "%s", b.err ? "{}" : b.p);
    al_buf_free(&b);
}

static int change_event(al_store_t *st, const char *kind, const char *actor, const char *path,
                        const char *scope, const char *target, const char *reason, bool drain)
{
    char detail[sizeof(((al_event_t *)0)->detail)];
    kill_detail(scope, target, reason, drain, detail, sizeof detail);
    return al__cli_change_event(st, kind, actor, path, strcmp(scope, "agent") == 0 ? target : NULL,
                                NULL, NULL, detail);
}

/* --- the active switches ------------------------------------------------------ */

typedef struct find_ctx {
    const char *scope, *target;
    al_kill_row_t row;
    bool found;
} find_ctx_t;

static int find_row(void *ud, const al_kill_row_t *r)
{
    find_ctx_t *f = ud;
    if (strcmp(r->scope, f->scope) == 0 && strcmp(r->target, f->target) == 0) {
        f->row = *r;
        f->found = true;
        return 1;
    }
    return 0;
}

/* The switch on (scope, target), if one is, into *was (was->found).  Prints
 * the problem; AL_OK or the store's code. */
static int find_switch(const char *prog, al_store_t *st, const char *scope, const char *target,
                       find_ctx_t *was /* OUT */)
{
    memset(was, 0, sizeof *was);
    was->scope = scope;
    was->target = target;
    int rc = al_store_kill_each(st, find_row, was);
    if (rc != AL_OK)
        fprintf(stderr, "%s: cannot read the kill switches: %s\n", prog, al_strerror(rc));
    return rc;
}

/* The exit code once the switch is STATE ("on" / "off"): 0, or 1 after saying
 * so when its change event (erc) could not be written. */
static int recorded(const char *prog, const char *state, int erc)
{
    if (erc == AL_OK) return 0;
    fprintf(stderr, "%s: the switch is %s but the change could not be recorded: %s\n", prog,
            state, al_strerror(erc));
    return 1;
}

/* --- kill ------------------------------------------------------------------------ */

static int kill_set(int argc, char **argv)
{
    static const char prog[] = "airlock kill";
    const char *config = NULL, *reason = NULL, *by = NULL, *scope = NULL, *target = NULL;
    bool drain = false, force = false;
    scope_args_t sa = {0};
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &sa.agent, NULL},
        {"--team", NULL, &sa.team, NULL},
        {"--provider", NULL, &sa.provider, NULL},
        {"--model", NULL, &sa.model, NULL},
        {"--all", NULL, NULL, &sa.all},
        {"--reason", NULL, &reason, NULL},
        {"--drain", NULL, NULL, &drain},
        {"--by", NULL, &by, NULL},
        {"--force", NULL, NULL, &force},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    al_kill_row_t row;
    char actor[96], what[160];
    int rc = al__cli_parse(prog, argc, argv, 0, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_kill(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (pick_scope(prog, &sa, &scope, &target)) return usage_err();
    if (check_reason(prog, reason) || check_by(prog, by)) return 2;
    al__cli_actor(by, actor, sizeof actor);
    describe(scope, target, what, sizeof what);

    const char *path = al__cli_config_path(config);
    if (al_cli_load_config(path, &cfg) != AL_OK) return 2;
    if (!force && !declared(cfg, scope, target)) {
        fprintf(stderr, "%s: %s '%s' is not declared in %s; if the running gateway's "
                        "configuration has it, repeat with --force\n",
                prog, scope, target, path);
        rc = 2;
        goto out;
    }
    if (al__cli_open_store(cfg, &st) != AL_OK) {
        rc = 1;
        goto out;
    }
    find_ctx_t was;
    if (find_switch(prog, st, scope, target, &was) != AL_OK) {
        rc = 1;
        goto out;
    }
    memset(&row, 0, sizeof row);
    snprintf(row.scope, sizeof row.scope, "%s", scope);
    snprintf(row.target, sizeof row.target, "%s", target);
    snprintf(row.reason, sizeof row.reason, "%s", reason);
    row.drain = drain;
    row.created_ms = al_wall_ms();
    snprintf(row.created_by, sizeof row.created_by, "%s", actor);
    if ((rc = al_store_kill_set(st, &row)) != AL_OK) {
        fprintf(stderr, "%s: cannot set the kill switch on %s: %s\n", prog, what,
                al_strerror(rc));
        rc = 1;
        goto out;
    }
    int erc = change_event(st, "kill.set", actor, "kill", scope, target, reason, drain);
    if (was.found)
        fprintf(stderr, "%s was killed already (%s); reason%s replaced\n", what,
                was.row.reason, was.row.drain != drain ? " and drain" : "");
    fprintf(stderr, "killed %s: %s (takes effect within a second%s)\n", what, reason,
            drain ? "; in-flight requests may finish" : "");
    rc = recorded(prog, "on", erc);
out:
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- kill list ---------------------------------------------------------------------- */

typedef struct list_ctx {
    bool json;
    al_buf_t line;
    al__cli_table_t table;
    size_t n;
} list_ctx_t;

static int list_row(void *ud, const al_kill_row_t *r)
{
    list_ctx_t *c = ud;
    c->n++;
    if (c->json) {
        al_buf_t *b = &c->line;
        al_buf_reset(b);
        al_buf_puts(b, "{\"scope\":");
        al_buf_json_str(b, r->scope, strnlen(r->scope, sizeof r->scope));
        al_buf_puts(b, ",\"target\":");
        if (r->target[0]) al_buf_json_str(b, r->target, strnlen(r->target, sizeof r->target));
        else al_buf_puts(b, "null");
        al_buf_puts(b, ",\"reason\":");
        al_buf_json_str(b, r->reason, strnlen(r->reason, sizeof r->reason));
        al_buf_printf(b, ",\"drain\":%s,\"created_ms\":%" PRId64 ",\"created_by\":",
                      r->drain ? "true" : "false", r->created_ms);
        al_buf_json_str(b, r->created_by, strnlen(r->created_by, sizeof r->created_by));
        al_buf_puts(b, "}\n");
        if (!b->err) fwrite(b->p, 1, b->len, stdout);
        return ferror(stdout) ? 1 : 0;
    }
    char since[32];
    al__cli_fmt_time(r->created_ms, since, sizeof since);
    const char *cells[] = {r->scope,  r->target[0] ? r->target : "*", r->drain ? "yes" : "no",
                           since,     r->created_by[0] ? r->created_by : "-", r->reason};
    al__cli_table_row(&c->table, cells);
    return ferror(stdout) ? 1 : 0;
}

static int kill_list(int argc, char **argv)
{
    static const char prog[] = "airlock kill list";
    static const char *const heads[] = {"SCOPE", "TARGET", "DRAIN", "SINCE", "BY", "REASON"};
    const char *config = NULL;
    bool json = false;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--json", NULL, NULL, &json},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    list_ctx_t c;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_kill(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&c, 0, sizeof c);
    c.json = json;
    al_buf_init(&c.line, 1 << 14);
    if (!json) al__cli_table_init(&c.table, stdout, AL_ARRAY_LEN(heads), heads, "llllll");
    rc = al_store_kill_each(st, list_row, &c);
    rc = al__cli_list_end(prog, "the kill switches", rc, json ? NULL : &c.table, &c.line);
    if (rc == 0 && c.n == 0 && !json) fprintf(stderr, "no kill switches are on\n");
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

int al_cli_kill(int argc, char **argv)
{
    if (argc < 1) return usage_err();
    const char *sub = argv[0];
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return kill_list(argc, argv);
    if (!strcmp(sub, "help")) {
        usage_kill(stdout);
        return 0;
    }
    return kill_set(argc, argv);
}

/* --- unkill ----------------------------------------------------------------------- */

int al_cli_unkill(int argc, char **argv)
{
    static const char prog[] = "airlock unkill";
    const char *config = NULL, *by = NULL, *scope = NULL, *target = NULL;
    scope_args_t sa = {0};
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &sa.agent, NULL},
        {"--team", NULL, &sa.team, NULL},
        {"--provider", NULL, &sa.provider, NULL},
        {"--model", NULL, &sa.model, NULL},
        {"--all", NULL, NULL, &sa.all},
        {"--by", NULL, &by, NULL},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    char actor[96], what[160];
    if (argc >= 1 && !strcmp(argv[0], "help")) {
        usage_kill(stdout);
        return 0;
    }
    int rc = al__cli_parse(prog, argc, argv, 0, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_kill(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (pick_scope(prog, &sa, &scope, &target)) return usage_err();
    if (check_by(prog, by)) return 2;
    al__cli_actor(by, actor, sizeof actor);
    describe(scope, target, what, sizeof what);

    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    /* What was on, for the record; the clear below decides. */
    find_ctx_t was;
    if (find_switch(prog, st, scope, target, &was) != AL_OK) {
        rc = 1;
        goto out;
    }
    rc = al_store_kill_clear(st, scope, target);
    if (rc == AL_ENOTFOUND) {
        fprintf(stderr, "%s: no kill switch is on for %s (see airlock kill list)\n", prog,
                what);
        rc = 1;
        goto out;
    }
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot clear the kill switch on %s: %s\n", prog, what,
                al_strerror(rc));
        rc = 1;
        goto out;
    }
    int erc = change_event(st, "kill.cleared", actor, "unkill", scope, target,
                           was.found ? was.row.reason : "", was.found && was.row.drain);
    fprintf(stderr, "unkilled %s (takes effect within a second)\n", what);
    rc = recorded(prog, "off", erc);
out:
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}
