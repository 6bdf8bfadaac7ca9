/* cli_escalations.c - `airlock escalations list | show | resolve`: the
 * people's side of `final: escalate` (notes/reliability.md).
 *
 * list prints the newest N escalations of a status (default open, 100) oldest
 * first, as a table or one JSON object per line; show prints every field of
 * one, the stored request body included; resolve closes an open one with an
 * answer (--answer TEXT, or --answer-file FILE, at most 1 MiB, "-" for stdin)
 * or a rejection (--reject REASON) through al_store_esc_close, whose "first
 * close wins" rule settles a race with the gateway's expiry or the admin API,
 * and then records an escalation.resolved / escalation.rejected event naming
 * the actor ("cli:" + --by, else $USER).  The JSON form is the escalation
 * object of the API (id, object, status, reason, created_at, resolved_at in
 * unix seconds, answer, completion: the chat completion a resolution becomes,
 * else null), "attempts" (the stored JSON array as is) and the row's other
 * fields, the same fields as the admin API's; show --json adds "request" (the
 * body as a string).  Whatever agents
 * put into a request is shown with control characters replaced, so a body
 * cannot drive the terminal. */
#include "cli/cli.h"
#include "store/escjson.h"
#include "store/event.h"
#include "util/common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define DEFAULT_LIMIT 100
#define ANSWER_MAX (1u << 20)       /* --answer / --answer-file cap */
#define LINE_MAX_BYTES (16u << 20)  /* one JSON line: escaped answer twice, body */
#define REASON_CELL 60              /* reason column width in the table */

static void usage_esc(FILE *f)
{
    fputs("usage: airlock escalations list    --config FILE [--status open|resolved|rejected|"
          "timeout|all]\n"
          "                                   [--agent NAME] [--limit N] [--json]\n"
          "       airlock escalations show    --config FILE ID [--json]\n"
          "       airlock escalations resolve --config FILE ID (--answer TEXT | "
          "--answer-file FILE | --reject REASON)\n"
          "                                   [--by NAME]\n"
          "\n"
          "list shows the newest N (default 100; --limit 0 for all) escalations of a status\n"
          "(default open), oldest first.  resolve answers an open escalation (the agent gets\n"
          "the answer as a chat completion; --answer-file - reads stdin, at most 1 MiB) or\n"
          "rejects it; it exits 1 when the id is unknown or no longer open.  --by names who\n"
          "acted (default $USER).  --config defaults to $AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

static int usage_err(void)
{
    usage_esc(stderr);
    return 2;
}

/* --- list ------------------------------------------------------------------- */

typedef struct list_ctx {
    bool json;
    al_buf_t line;
    al__cli_table_t table;
    uint64_t n;
} list_ctx_t;

/* At most max characters of s (UTF-8), "..." when cut. */
static void shorten(const char *s, size_t max, char *out, size_t outsz)
{
    size_t chars = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars > max) break;
    }
    if (!s[i]) {
        snprintf(out, outsz, "%s", s);
        return;
    }
    /* Cut at the start of character max-2 to leave room for "...". */
    size_t keep = 0;
    chars = 0;
    for (size_t k = 0; s[k]; k++) {
        if (((unsigned char)s[k] & 0xC0) != 0x80 && ++chars > max - 3) break;
        keep = k + 1;
    }
    snprintf(out, outsz, "%.*s...", (int)keep, s);
}

static int list_row(void *ud, const al_esc_row_t *r)
{
    list_ctx_t *c = ud;
    c->n++;
    if (c->json) {
        al_buf_reset(&c->line);
        al_esc_json(&c->line, r, true, false);
        al_buf_putc(&c->line, '\n');
        if (!c->line.err) fwrite(c->line.p, 1, c->line.len, stdout);
        return ferror(stdout) ? 1 : 0;
    }
    char created[32], reason[sizeof r->reason + 8];
    al__cli_fmt_time(r->created_ms, created, sizeof created);
    shorten(r->reason, REASON_CELL, reason, sizeof reason);
    const char *cells[] = {r->id,
                           created,
                           r->agent[0] ? r->agent : "-",
                           r->route[0] ? r->route : "-",
                           r->model[0] ? r->model : "-",
                           r->status,
                           reason[0] ? reason : "-"};
    al__cli_table_row(&c->table, cells);
    return ferror(stdout) ? 1 : 0;
}

static bool valid_status(const char *s)
{
    static const char *const ok[] = {"open", "resolved", "rejected", "timeout", "all"};
    for (size_t i = 0; i < AL_ARRAY_LEN(ok); i++)
        if (strcmp(s, ok[i]) == 0) return true;
    return false;
}

static int esc_list(int argc, char **argv)
{
    static const char prog[] = "airlock escalations list";
    static const char *const heads[] = {"ID", "CREATED", "AGENT", "ROUTE",
                                        "MODEL", "STATUS", "REASON"};
    const char *config = NULL, *status = "open", *agent = NULL, *limit = NULL;
    bool json = false;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--status", NULL, &status, NULL},
        {"--agent", NULL, &agent, NULL},
        {"--limit", "-n", &limit, NULL},
        {"--json", NULL, NULL, &json},
    };
    const char *pos[1];
    size_t npos;
    al_esc_filter_t flt = {.limit = DEFAULT_LIMIT};
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    list_ctx_t c;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_esc(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (!valid_status(status)) {
        fprintf(stderr, "%s: --status '%s': expected open, resolved, rejected, timeout or all\n",
                prog, status);
        return 2;
    }
    if (limit && al__cli_parse_limit(prog, limit, &flt.limit)) return 2;
    flt.status = strcmp(status, "all") == 0 ? NULL : status;
    flt.agent = agent && *agent ? agent : NULL;

    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&c, 0, sizeof c);
    c.json = json;
    al_buf_init(&c.line, LINE_MAX_BYTES);
    if (!json) al__cli_table_init(&c.table, stdout, AL_ARRAY_LEN(heads), heads, "lllllll");
    rc = al_store_esc_each(st, &flt, list_row, &c);
    rc = al__cli_list_end(prog, "escalations", rc, json ? NULL : &c.table, &c.line);
    if (rc == 0 && c.n == 0 && !json)
        fprintf(stderr, "no %s%sescalations%s%s\n", flt.status ? status : "",
                flt.status ? " " : "", flt.agent ? " for agent " : "", flt.agent ? flt.agent : "");
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- show ------------------------------------------------------------------- */

/* Text from the network onto a terminal: control characters other than
 * newline and tab become '?'; continuation lines are indented. */
static void print_block(FILE *f, const char *s)
{
    fputs("  ", f);
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\n') {
            fputs(p[1] ? "\n  " : "", f);
            continue;
        }
        if (ch == '\r' && p[1] == '\n') continue;
        fputc((ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : ch, f);
    }
    fputc('\n', f);
}

static void print_field(FILE *f, const char *name, const char *v)
{
    fprintf(f, "%-12s ", name);
    for (const char *p = v && *v ? v : "-"; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f);
    }
    fputc('\n', f);
}

static void print_esc(FILE *f, const al_esc_row_t *r)
{
    char t[32];
    print_field(f, "id", r->id);
    print_field(f, "status", r->status);
    al__cli_fmt_time(r->created_ms, t, sizeof t);
    print_field(f, "created", t);
    al__cli_fmt_time(r->expires_ms, t, sizeof t);
    print_field(f, "expires", t);
    print_field(f, "agent", r->agent);
    print_field(f, "key", r->key_id);
    print_field(f, "route", r->route);
    print_field(f, "model", r->model);
    print_field(f, "request id", r->request_id);
    print_field(f, "event id", r->event_id);
    print_field(f, "mode", r->mode);
    print_field(f, "stream", r->stream ? "yes" : "no");
    print_field(f, "reason", r->reason);
    print_field(f, "attempts", r->attempts);
    if (strcmp(r->status, "open") != 0) {
        al__cli_fmt_time(r->resolved_ms, t, sizeof t);
        print_field(f, "closed", t);
        print_field(f, "closed by", r->resolved_by);
    }
    if (r->answer) {
        fprintf(f, "%s\n", strcmp(r->status, "rejected") == 0 ? "rejection:" : "answer:");
        print_block(f, r->answer);
    }
    fputs("request:\n", f);
    print_block(f, r->request ? r->request : "-");
}

static int esc_show(int argc, char **argv)
{
    static const char prog[] = "airlock escalations show";
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
    al_esc_row_t row;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 1, &npos);
    if (rc == 1) {
        usage_esc(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (npos != 1 || !*pos[0]) {
        fprintf(stderr, "%s: which escalation? give its id (see airlock escalations list)\n",
                prog);
        return usage_err();
    }
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&row, 0, sizeof row);
    rc = al_store_esc_get(st, pos[0], &row);
    if (rc == AL_ENOTFOUND) {
        fprintf(stderr, "%s: no escalation '%s'\n", prog, pos[0]);
        rc = 1;
        goto out;
    }
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot read '%s': %s\n", prog, pos[0], al_strerror(rc));
        rc = 1;
        goto out;
    }
    if (json) {
        al_buf_t b;
        al_buf_init(&b, LINE_MAX_BYTES);
        al_esc_json(&b, &row, true, true);
        al_buf_putc(&b, '\n');
        if (!b.err) fwrite(b.p, 1, b.len, stdout);
        else fprintf(stderr, "%s: %s\n", prog, al_strerror(b.err));
        rc = b.err ? 1 : 0;
        al_buf_free(&b);
    } else {
        print_esc(stdout, &row);
        rc = 0;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) rc = 1;
    al_esc_row_free(&row);
out:
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- resolve ----------------------------------------------------------------- */

/* Read at most ANSWER_MAX bytes of path ("-" = stdin) into a NUL-terminated
 * string; 0, or 2 after saying why. */
static int read_answer(const char *prog, const char *path, char **out /* OUT */)
{
    al_buf_t b;
    char chunk[65536];
    int rc = 2;
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    *out = NULL;
    al_buf_init(&b, ANSWER_MAX);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot read --answer-file '%s': %s\n", prog, path,
                strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: --answer-file '%s' is a directory\n", prog, path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "%s: cannot read --answer-file '%s': %s\n", prog, path,
                    strerror(errno));
            goto out;
        }
        if (n == 0) break;
        if (al_buf_append(&b, chunk, (size_t)n) != AL_OK) {
            fprintf(stderr, "%s: --answer-file '%s' is larger than 1 MiB\n", prog, path);
            goto out;
        }
    }
    if (b.len && memchr(b.p, '\0', b.len)) {
        fprintf(stderr, "%s: --answer-file '%s' contains NUL bytes (not text)\n", prog, path);
        goto out;
    }
    /* A file's final newline is not part of the answer. */
    while (b.len && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == '\r')) b.p[--b.len] = '\0';
    *out = al_buf_take(&b, NULL);
    if (!*out) *out = al_strdup("");
    rc = 0;
out:
    if (fd >= 0 && !is_stdin) close(fd);
    al_buf_free(&b);
    return rc;
}

static void say_closed(const char *prog, const al_esc_row_t *r)
{
    char t[32];
    al__cli_fmt_time(r->resolved_ms, t, sizeof t);
    fprintf(stderr, "%s: escalation %s is no longer open: it is %s", prog, r->id, r->status);
    if (r->resolved_by[0]) fprintf(stderr, " (by %s at %s)\n", r->resolved_by, t);
    else if (r->resolved_ms > 0) fprintf(stderr, " (at %s)\n", t);
    else fputc('\n', stderr);
}

static int esc_resolve(int argc, char **argv)
{
    static const char prog[] = "airlock escalations resolve";
    const char *config = NULL, *answer = NULL, *answer_file = NULL, *reject = NULL, *by = NULL;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--answer", NULL, &answer, NULL},
        {"--answer-file", NULL, &answer_file, NULL},
        {"--reject", NULL, &reject, NULL},
        {"--by", NULL, &by, NULL},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    al_esc_row_t row;
    char *text = NULL, actor[96];
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 1, &npos);
    if (rc == 1) {
        usage_esc(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (npos != 1 || !*pos[0]) {
        fprintf(stderr, "%s: which escalation? give its id (see airlock escalations list)\n",
                prog);
        return usage_err();
    }
    const char *id = pos[0];
    if ((answer != NULL) + (answer_file != NULL) + (reject != NULL) != 1) {
        fprintf(stderr, "%s: give exactly one of --answer TEXT, --answer-file FILE and "
                        "--reject REASON\n", prog);
        return usage_err();
    }
    if (by && (!*by || strlen(by) > 64)) {
        fprintf(stderr, "%s: --by must be 1 to 64 bytes\n", prog);
        return 2;
    }
    const char *status = reject ? "rejected" : "resolved";
    if (answer_file) {
        if (read_answer(prog, answer_file, &text)) return 2;
    } else {
        const char *v = answer ? answer : reject;
        if (strlen(v) > ANSWER_MAX) {
            fprintf(stderr, "%s: --%s is larger than 1 MiB\n", prog, answer ? "answer" : "reject");
            return 2;
        }
        text = al_strdup(v);
    }
    if (!*text) {
        fprintf(stderr, "%s: the %s is empty\n", prog, reject ? "rejection reason" : "answer");
        free(text);
        return 2;
    }
    al__cli_actor(by, actor, sizeof actor);

    memset(&row, 0, sizeof row);
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) goto out;
    rc = al_store_esc_get(st, id, &row);
    if (rc == AL_ENOTFOUND) {
        fprintf(stderr, "%s: no escalation '%s'\n", prog, id);
        rc = 1;
        goto out;
    }
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot read '%s': %s\n", prog, id, al_strerror(rc));
        rc = 1;
        goto out;
    }
    if (strcmp(row.status, "open") != 0) {
        say_closed(prog, &row);
        rc = 1;
        goto out;
    }
    rc = al_store_esc_close(st, id, status, text, actor, al_wall_ms());
    if (rc == AL_ESTATE || rc == AL_ENOTFOUND) {
        /* Closed (or removed) between the read and the close: say by whom. */
        al_esc_row_free(&row);
        memset(&row, 0, sizeof row);
        if (rc == AL_ESTATE && al_store_esc_get(st, id, &row) == AL_OK) {
            say_closed(prog, &row);
        } else {
            fprintf(stderr, "%s: no escalation '%s'\n", prog, id);
        }
        rc = 1;
        goto out;
    }
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot close '%s': %s\n", prog, id, al_strerror(rc));
        rc = 1;
        goto out;
    }
    int erc = al__cli_change_event(st, reject ? "escalation.rejected" : "escalation.resolved",
                                   actor, "escalations resolve", row.agent, id, NULL, NULL);
    fprintf(stderr, "%s escalation %s (agent %s) as %s\n", reject ? "rejected" : "resolved", id,
            row.agent[0] ? row.agent : "-", actor);
    rc = 0;
    if (erc != AL_OK) {
        fprintf(stderr, "%s: the escalation is %s but the change could not be recorded: %s\n",
                prog, status, al_strerror(erc));
        rc = 1;
    }
out:
    al_esc_row_free(&row);
    free(text);
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

int al_cli_escalations(int argc, char **argv)
{
    if (argc < 1) return usage_err();
    const char *sub = argv[0];
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return esc_list(argc, argv);
    if (!strcmp(sub, "show")) return esc_show(argc, argv);
    if (!strcmp(sub, "resolve")) return esc_resolve(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_esc(stdout);
        return 0;
    }
    fprintf(stderr, "airlock escalations: unknown subcommand '%s'\n", sub);
    return usage_err();
}
