/* cli_keys.c - `airlock keys create | list | revoke`, and the helpers the
 * CLI commands share: argument parsing, loading the configuration without
 * requiring provider secrets, opening the store, checking --limit,
 * --expires, --label and --agent, times and aligned tables.
 *
 * `keys create` refuses agents the configuration does not declare (no shadow
 * agents), stores only the SHA-256 of the new secret and prints the secret
 * alone on stdout (so `KEY=$(airlock keys create ...)` works); what was
 * created goes to stderr.  If the secret cannot be written to stdout the key
 * is revoked again, so no usable key exists that nobody has seen.  `keys
 * list` never shows secrets or hashes. */
#include "cli/cli.h"
#include "policy/keys.h"
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

#define CONFIG_READ_MAX (16u << 20) /* the config module's own cap */

/* --- shared helpers ------------------------------------------------------- */

int al__cli_parse(const char *prog, int argc, char **argv, int first,
                  const al__cli_flag_t *flags, size_t nflags, const char **pos,
                  size_t maxpos, size_t *npos)
{
    bool flags_done = false;
    *npos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (flags_done || a[0] != '-' || a[1] == '\0') {
            if (*npos >= maxpos) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
                return 2;
            }
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return 1;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const al__cli_flag_t *f = NULL;
        for (size_t k = 0; k < nflags && !f; k++) {
            if ((strlen(flags[k].name) == nlen && memcmp(flags[k].name, a, nlen) == 0) ||
                (flags[k].alias && strlen(flags[k].alias) == nlen &&
                 memcmp(flags[k].alias, a, nlen) == 0))
                f = &flags[k];
        }
        if (!f) {
            fprintf(stderr, "%s: unknown flag '%.*s'\n", prog, (int)nlen, a);
            return 2;
        }
        if (f->on) {
            if (eq) {
                fprintf(stderr, "%s: %s takes no value\n", prog, f->name);
                return 2;
            }
            *f->on = true;
            continue;
        }
        if (eq) {
            *f->value = eq + 1;
        } else if (i + 1 < argc) {
            *f->value = argv[++i];
        } else {
            fprintf(stderr, "%s: %s needs a value\n", prog, f->name);
            return 2;
        }
    }
    return 0;
}

const char *al__cli_config_path(const char *flag_value)
{
    if (flag_value && *flag_value) return flag_value;
    const char *env = getenv("AIRLOCK_CONFIG");
    return env && *env ? env : "airlock.yaml";
}

/* Provider secrets are not needed to manage keys or read events. */
static const char *env_or_empty(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "";
}

int al_cli_load_config(const char *path, al_config_t **out)
{
    char err[1024];
    struct stat st;
    al_buf_t b;
    char chunk[65536];
    int rc = AL_EIO;
    *out = NULL;
    al_buf_init(&b, CONFIG_READ_MAX);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) goto io_error;
    if (!S_ISREG(st.st_mode)) {
        errno = EISDIR;
        if (!S_ISDIR(st.st_mode)) errno = EINVAL;
        goto io_error;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) goto io_error;
        if (n == 0) break;
        if (al_buf_append(&b, chunk, (size_t)n) != AL_OK) {
            fprintf(stderr, "airlock: config '%s' is larger than %u bytes\n", path,
                    CONFIG_READ_MAX);
            rc = AL_EINVAL;
            goto out;
        }
    }
    rc = al_config_load_buf(path, b.p ? b.p : "", b.len, env_or_empty, out, err, sizeof err);
    if (rc != AL_OK) {
        fprintf(stderr, "airlock: %s\n", err[0] ? err : "invalid configuration");
        if (rc != AL_EIO) rc = AL_EINVAL;
    }
    goto out;
io_error:
    fprintf(stderr, "airlock: cannot read config '%s': %s%s\n", path, strerror(errno),
            errno == ENOENT ? " (use --config FILE or set AIRLOCK_CONFIG)" : "");
    rc = AL_EIO;
out:
    if (fd >= 0) close(fd);
    al_buf_free(&b);
    return rc;
}

int al__cli_open_store(const al_config_t *c, al_store_t **out)
{
    char err[1024];
    const char *url = c->store.url ? c->store.url : c->store.sqlite_path;
    /* The CLI only runs blocking queries: a one-slot queue, no writer. */
    al_store_opts_t o = {.queue_capacity = 1, .flush_interval_ms = 1, .batch_max = 1,
                         .audit_off = !c->audit.enabled};
    if (!url) {
        fprintf(stderr, "airlock: %s names no store (store.url)\n", c->path);
        return AL_EINVAL;
    }
    int rc = al_store_open(url, &o, out, err, sizeof err);
    if (rc != AL_OK) fprintf(stderr, "airlock: %s\n", err);
    return rc;
}

int al__cli_open(const char *config_flag, al_config_t **cfg, al_store_t **st)
{
    *st = NULL;
    if (al_cli_load_config(al__cli_config_path(config_flag), cfg) != AL_OK) return 2;
    if (al__cli_open_store(*cfg, st) != AL_OK) {
        al_config_unref(*cfg);
        *cfg = NULL;
        *st = NULL;
        return 1;
    }
    return 0;
}

int al__cli_parse_limit(const char *prog, const char *arg, uint32_t *out)
{
    uint64_t n = 0;
    if (al_parse_u64(arg, strlen(arg), &n) != AL_OK || n > UINT32_MAX) {
        fprintf(stderr, "%s: --limit '%s': expected a whole number (0 = all)\n", prog, arg);
        return 2;
    }
    *out = (uint32_t)n;
    return 0;
}

int al__cli_parse_expires(const char *prog, const char *arg, int64_t now, int64_t *expires_ms)
{
    uint64_t d = 0;
    *expires_ms = 0;
    if (!arg || strcmp(arg, "never") == 0) return 0;
    if (al_parse_duration_ms(arg, &d) != AL_OK || d == 0 || d > (uint64_t)(INT64_MAX - now)) {
        fprintf(stderr, "%s: --expires '%s': expected a positive duration like 30d, 12h, "
                        "90m or 'never'\n", prog, arg);
        return 2;
    }
    *expires_ms = now + (int64_t)d;
    return 0;
}

int al__cli_check_label(const char *prog, const char *label, size_t max)
{
    size_t n = strlen(label);
    if (n >= max) {
        fprintf(stderr, "%s: --label is longer than %zu bytes\n", prog, max - 1);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f) {
            fprintf(stderr, "%s: --label must not contain control characters\n", prog);
            return 2;
        }
    }
    return 0;
}

bool al__cli_agent_declared(const char *prog, const al_config_t *cfg, const char *agent,
                            const char *path)
{
    if (al_config_agent(cfg, agent, strlen(agent))) return true;
    fprintf(stderr, "%s: agent '%s' is not declared in %s", prog, agent, path);
    for (size_t i = 0; i < cfg->n_agents; i++)
        fprintf(stderr, "%s%s", i ? ", " : " (declared: ", cfg->agents[i].name);
    fputs(cfg->n_agents ? ")\n" : "; add it under agents: first\n", stderr);
    return false;
}

void al__cli_fmt_time(int64_t ms, char *out, size_t outsz)
{
    char ts[32];
    if (ms <= 0) {
        snprintf(out, outsz, "-");
        return;
    }
    size_t n = al_event_fmt_ts(ms, ts, sizeof ts);
    /* Drop the milliseconds: "....:SS.mmmZ" -> "....:SSZ". */
    if (n == 24) snprintf(out, outsz, "%.19sZ", ts);
    else snprintf(out, outsz, "%s", ts);
}

/* Columns a string takes on a terminal: one per UTF-8 character. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

static char *clean_cell(const char *s)
{
    char *c = al_strdup(s ? s : "");
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return c;
}

void al__cli_table_init(al__cli_table_t *t, FILE *out, size_t ncols, const char *const *heads,
                        const char *align)
{
    AL_ASSERT(ncols > 0 && ncols <= AL__CLI_TABLE_COLS);
    memset(t, 0, sizeof *t);
    t->out = out;
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        t->heads[i] = heads[i];
        t->right[i] = align && align[i] == 'r';
        t->width[i] = display_width(heads[i]);
    }
    t->cells = al_calloc(AL__CLI_TABLE_BUFFER * ncols, sizeof *t->cells);
}

static void print_row(al__cli_table_t *t, const char *const *cells)
{
    for (size_t i = 0; i < t->ncols; i++) {
        size_t w = display_width(cells[i]);
        size_t pad = t->width[i] > w ? t->width[i] - w : 0;
        bool last = i + 1 == t->ncols;
        if (t->right[i])
            fprintf(t->out, "%*s%s", (int)pad, "", cells[i]);
        else
            fprintf(t->out, "%s%*s", cells[i], last ? 0 : (int)pad, "");
        fputs(last ? "\n" : "  ", t->out);
    }
}

static void table_flush(al__cli_table_t *t)
{
    if (t->flushed) return;
    t->flushed = true;
    print_row(t, t->heads);
    for (size_t r = 0; r < t->nrows; r++) {
        print_row(t, (const char *const *)&t->cells[r * t->ncols]);
        for (size_t i = 0; i < t->ncols; i++) AL_FREE(t->cells[r * t->ncols + i]);
    }
    t->nrows = 0;
}

void al__cli_table_row(al__cli_table_t *t, const char *const *cells)
{
    char *c[AL__CLI_TABLE_COLS];
    for (size_t i = 0; i < t->ncols; i++) c[i] = clean_cell(cells[i]);
    if (t->flushed) {
        print_row(t, (const char *const *)c);
        for (size_t i = 0; i < t->ncols; i++) free(c[i]);
        return;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        size_t w = display_width(c[i]);
        if (w > t->width[i]) t->width[i] = w;
        t->cells[t->nrows * t->ncols + i] = c[i];
    }
    if (++t->nrows == AL__CLI_TABLE_BUFFER) table_flush(t);
}

void al__cli_table_end(al__cli_table_t *t)
{
    if (t->nrows > 0) table_flush(t);
    AL_FREE(t->cells);
}

int al__cli_list_end(const char *prog, const char *what, int walk_rc, al__cli_table_t *table,
                     al_buf_t *line)
{
    if (table) al__cli_table_end(table);
    al_buf_free(line);
    if (walk_rc != AL_OK) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, what, al_strerror(walk_rc));
        return 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) return 1;
    return 0;
}

/* --- keys create ------------------------------------------------------------ */

static void usage_keys(FILE *f)
{
    fputs("usage: airlock keys create --config FILE --agent NAME [--expires 30d|never] "
          "[--label TEXT]\n"
          "       airlock keys list   --config FILE [--agent NAME] [--json]\n"
          "       airlock keys revoke --config FILE ID\n"
          "\n"
          "create prints the new key (alone) on stdout; it is shown only once.\n"
          "--expires takes a duration: 30d, 12h, 90m, 3600s.  --config defaults to\n"
          "$AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

static int usage_err(void)
{
    usage_keys(stderr);
    return 2;
}

static int keys_create(int argc, char **argv)
{
    static const char prog[] = "airlock keys create";
    const char *config = NULL, *agent = NULL, *expires = NULL, *label = "";
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &agent, NULL},
        {"--expires", NULL, &expires, NULL},
        {"--label", NULL, &label, NULL},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    al_key_row_t row;
    char secret[AL_KEY_SECRET_MAX], when[32];
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_keys(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (!agent || !*agent) {
        fprintf(stderr, "%s: --agent NAME is required\n", prog);
        return usage_err();
    }
    int64_t now = al_wall_ms(), expires_ms = 0;
    if (al__cli_parse_expires(prog, expires, now, &expires_ms)) return 2;
    if (al__cli_check_label(prog, label, sizeof row.label)) return 2;

    const char *path = al__cli_config_path(config);
    if (al_cli_load_config(path, &cfg) != AL_OK) return 2;
    if (!al__cli_agent_declared(prog, cfg, agent, path)) {
        rc = 2;
        goto out;
    }
    if (al__cli_open_store(cfg, &st) != AL_OK) {
        rc = 1;
        goto out;
    }

    for (int attempt = 0;; attempt++) {
        memset(&row, 0, sizeof row);
        al_key_generate(secret, row.id);
        al_key_hash(secret, strlen(secret), row.hash);
        snprintf(row.agent, sizeof row.agent, "%s", agent);
        snprintf(row.label, sizeof row.label, "%s", label);
        row.created_ms = now;
        row.expires_ms = expires_ms;
        rc = al_store_key_insert(st, &row);
        if (rc != AL_EEXIST || attempt == 2) break; /* an id collision: draw again */
    }
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot store the key: %s\n", prog, al_strerror(rc));
        rc = 1;
        goto out;
    }
    {
        char actor[96];
        al__cli_actor(NULL, actor, sizeof actor);
        if (al__cli_change_event(st, "key.created", actor, "keys create", agent, NULL, row.id,
                                 NULL) != AL_OK) {
            al_store_key_revoke(st, row.id);
            fprintf(stderr, "%s: cannot record the change; key %s revoked\n", prog, row.id);
            rc = 1;
            goto out;
        }
    }
    if (fprintf(stdout, "%s\n", secret) < 0 || fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        al_store_key_revoke(st, row.id);
        fprintf(stderr, "%s: cannot write the key to stdout (%s); key %s revoked\n", prog,
                strerror(e), row.id);
        rc = 1;
        goto out;
    }
    al__cli_fmt_time(expires_ms, when, sizeof when);
    fprintf(stderr, "created key %s for agent %s%s%s%s, expires %s\n", row.id, agent,
            label[0] ? " (label \"" : "", label, label[0] ? "\")" : "",
            expires_ms ? when : "never");
    fprintf(stderr, "the key is shown only this once: store it now\n");
    rc = 0;
out:
    explicit_bzero(secret, sizeof secret);
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- keys list ---------------------------------------------------------------- */

typedef struct list_ctx {
    const char *agent;
    bool json;
    int64_t now;
    al__cli_table_t table;
    al_buf_t line;
    size_t n;
} list_ctx_t;

static const char *key_status(const al_key_row_t *r, int64_t now)
{
    if (r->revoked_ms) return "revoked";
    if (r->expires_ms && r->expires_ms <= now) return "expired";
    return "active";
}

static void json_ms(al_buf_t *b, const char *key, int64_t ms)
{
    if (ms > 0) al_buf_printf(b, ",\"%s\":%" PRId64, key, ms);
    else al_buf_printf(b, ",\"%s\":null", key);
}

static int list_row(void *ud, const al_key_row_t *r)
{
    list_ctx_t *c = ud;
    if (c->agent && strcmp(c->agent, r->agent) != 0) return 0;
    c->n++;
    if (c->json) {
        al_buf_t *b = &c->line;
        al_buf_reset(b);
        al_buf_puts(b, "{\"id\":");
        al_buf_json_str(b, r->id, strnlen(r->id, sizeof r->id));
        al_buf_puts(b, ",\"agent\":");
        al_buf_json_str(b, r->agent, strnlen(r->agent, sizeof r->agent));
        al_buf_puts(b, ",\"label\":");
        al_buf_json_str(b, r->label, strnlen(r->label, sizeof r->label));
        al_buf_printf(b, ",\"status\":\"%s\"", key_status(r, c->now));
        json_ms(b, "created_ms", r->created_ms);
        json_ms(b, "expires_ms", r->expires_ms);
        json_ms(b, "revoked_ms", r->revoked_ms);
        json_ms(b, "last_used_ms", r->last_used_ms);
        al_buf_puts(b, "}\n");
        if (!b->err) fwrite(b->p, 1, b->len, stdout);
        return 0;
    }
    char created[32], expires[48], revoked[32], used[32];
    al__cli_fmt_time(r->created_ms, created, sizeof created);
    al__cli_fmt_time(r->expires_ms, expires, sizeof expires);
    if (r->expires_ms && r->expires_ms <= c->now && !r->revoked_ms) {
        size_t n = strlen(expires);
        snprintf(expires + n, sizeof expires - n, " (expired)");
    }
    al__cli_fmt_time(r->revoked_ms, revoked, sizeof revoked);
    al__cli_fmt_time(r->last_used_ms, used, sizeof used);
    const char *cells[] = {r->id, r->agent, r->label[0] ? r->label : "-", created, expires,
                           revoked, used};
    al__cli_table_row(&c->table, cells);
    return 0;
}

static int keys_list(int argc, char **argv)
{
    static const char prog[] = "airlock keys list";
    static const char *const heads[] = {"ID", "AGENT", "LABEL", "CREATED", "EXPIRES",
                                        "REVOKED", "LAST USED"};
    const char *config = NULL, *agent = NULL;
    bool json = false;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &agent, NULL},
        {"--json", NULL, NULL, &json},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    list_ctx_t c;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_keys(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&c, 0, sizeof c);
    c.agent = agent && *agent ? agent : NULL;
    c.json = json;
    c.now = al_wall_ms();
    al_buf_init(&c.line, 1 << 16);
    if (!json) al__cli_table_init(&c.table, stdout, AL_ARRAY_LEN(heads), heads, "lllllll");
    rc = al_store_key_each(st, list_row, &c);
    if (!json) al__cli_table_end(&c.table);
    al_buf_free(&c.line);
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot read keys: %s\n", prog, al_strerror(rc));
        rc = 1;
    } else {
        if (c.n == 0 && !json) fprintf(stderr, "no keys%s%s\n", c.agent ? " for agent " : "",
                                       c.agent ? c.agent : "");
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- keys revoke ---------------------------------------------------------------- */

static int keys_revoke(int argc, char **argv)
{
    static const char prog[] = "airlock keys revoke";
    const char *config = NULL;
    const al__cli_flag_t flags[] = {{"--config", "-c", &config, NULL}};
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 1, &npos);
    if (rc == 1) {
        usage_keys(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (npos != 1 || !*pos[0]) {
        fprintf(stderr, "%s: which key? give its id (see airlock keys list)\n", prog);
        return usage_err();
    }
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    rc = al_store_key_revoke(st, pos[0]);
    if (rc == AL_OK) {
        char actor[96];
        al__cli_actor(NULL, actor, sizeof actor);
        if (al__cli_change_event(st, "key.revoked", actor, "keys revoke", NULL, NULL, pos[0],
                                 NULL) != AL_OK)
            fprintf(stderr, "%s: key %s revoked, but the change could not be recorded\n", prog,
                    pos[0]);
        fprintf(stderr, "revoked key %s\n", pos[0]);
    } else if (rc == AL_ENOTFOUND) {
        fprintf(stderr, "%s: no such key '%s'\n", prog, pos[0]);
        rc = 1;
    } else {
        fprintf(stderr, "%s: cannot revoke '%s': %s\n", prog, pos[0], al_strerror(rc));
        rc = 1;
    }
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

int al_cli_keys(int argc, char **argv)
{
    if (argc < 1) return usage_err();
    const char *sub = argv[0];
    if (!strcmp(sub, "create")) return keys_create(argc, argv);
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return keys_list(argc, argv);
    if (!strcmp(sub, "revoke")) return keys_revoke(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_keys(stdout);
        return 0;
    }
    fprintf(stderr, "airlock keys: unknown subcommand '%s'\n", sub);
    return usage_err();
}
