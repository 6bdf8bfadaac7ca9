/* cli_admin.c - `airlock admin-token create | list | revoke`, and the two
 * helpers the CLI's change commands share: the actor name ("cli:USER") and
 * writing a change record into the events table.
 *
 * An admin token is made like an agent key (policy/keys.c: 32 random bytes,
 * base64url, SHA-256 stored) with "adm_" in front of both the secret and its
 * id; only the hash reaches the store.  `create` validates the role (admin,
 * operator, auditor, viewer, owner; an owner token must name an agent the
 * configuration declares, the others must not name one), stores the token,
 * records an `admin_token.created` event and only then prints the secret,
 * alone, on stdout: so every usable token has an audit record, and if stdout
 * cannot be written the token is revoked again (nobody has seen it).  `list`
 * never shows secrets or hashes; `revoke` records `admin_token.revoked`. */
#include "cli/cli.h"
#include "policy/keys.h"
#include "store/event.h"
#include "util/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADM_PREFIX "adm_"

/* --- shared helpers ------------------------------------------------------- */

void al__cli_actor(const char *by, char *out, size_t outsz)
{
    const char *who = by && *by ? by : getenv("USER");
    if (!who || !*who) who = "unknown";
    snprintf(out, outsz, "cli:%s", who);
    size_t n = strlen(out);
    /* snprintf may have cut a UTF-8 character in half: drop the partial one. */
    if (n + 1 == outsz) {
        size_t k = n, cont = 0;
        while (k > 4 && ((unsigned char)out[k - 1] & 0xC0) == 0x80) {
            k--;
            cont++;
        }
        unsigned char lead = (unsigned char)out[k - 1];
        size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
        if (k > 4 && (lead & 0xC0) == 0xC0 && cont < need) out[k - 1] = '\0';
    }
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

int al__cli_change_event(al_store_t *st, const char *kind, const char *actor,
                         const char *path, const char *agent, const char *escalation_id,
                         const char *key_id, const char *detail)
{
    al_event_t e;
    al_event_init(&e);
    al_event_make_id(e.id);
    e.ts_ms = al_wall_ms();
    AL_EVENT_SET(&e, method, "CLI", 3);
    AL_EVENT_SET(&e, path, path, strlen(path));
    AL_EVENT_SET(&e, kind, kind, strlen(kind));
    AL_EVENT_SET(&e, actor, actor, strlen(actor));
    AL_EVENT_SET(&e, outcome, "ok", 2);
    e.status = 200;
    if (agent) AL_EVENT_SET(&e, agent, agent, strlen(agent));
    if (escalation_id) AL_EVENT_SET(&e, escalation_id, escalation_id, strlen(escalation_id));
    if (key_id) AL_EVENT_SET(&e, key_id, key_id, strlen(key_id));
    if (detail) AL_EVENT_SET(&e, detail, detail, strlen(detail));
    return al_store_event_insert(st, &e);
}

/* --- admin-token create --------------------------------------------------- */

static const char *const roles[] = {"admin", "operator", "auditor", "viewer", "owner"};

static void usage_admin(FILE *f)
{
    fputs("usage: airlock admin-token create --config FILE --role ROLE [--agent NAME] "
          "[--label TEXT] [--expires 30d|never]\n"
          "       airlock admin-token list   --config FILE [--json]\n"
          "       airlock admin-token revoke --config FILE ID\n"
          "\n"
          "Tokens for the admin API (Authorization: Bearer TOKEN).  ROLE is admin,\n"
          "operator, auditor, viewer or owner; an owner token needs --agent (an agent\n"
          "of the configuration), the other roles take none.  create prints the token\n"
          "(alone) on stdout; it is shown only once.  --config defaults to\n"
          "$AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

static int usage_err(void)
{
    usage_admin(stderr);
    return 2;
}

static bool valid_role(const char *r)
{
    for (size_t i = 0; i < AL_ARRAY_LEN(roles); i++)
        if (strcmp(r, roles[i]) == 0) return true;
    return false;
}

static int token_create(int argc, char **argv)
{
    static const char prog[] = "airlock admin-token create";
    const char *config = NULL, *role = NULL, *agent = NULL, *expires = NULL, *label = "";
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--role", NULL, &role, NULL},
        {"--agent", NULL, &agent, NULL},
        {"--label", NULL, &label, NULL},
        {"--expires", NULL, &expires, NULL},
    };
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    al_admin_token_row_t row;
    char secret[AL_KEY_SECRET_MAX], kid[32], when[32], actor[96];
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_admin(stdout);
        return 0;
    }
    if (rc) return usage_err();
    memset(secret, 0, sizeof secret);
    if (!role || !*role) {
        fprintf(stderr, "%s: --role is required (admin, operator, auditor, viewer or owner)\n",
                prog);
        return usage_err();
    }
    if (!valid_role(role)) {
        fprintf(stderr, "%s: unknown role '%s' (admin, operator, auditor, viewer or owner)\n",
                prog, role);
        return 2;
    }
    bool owner = strcmp(role, "owner") == 0;
    if (agent && !*agent) agent = NULL;
    if (owner && !agent) {
        fprintf(stderr, "%s: an owner token needs --agent NAME (the agent it owns)\n", prog);
        return 2;
    }
    if (!owner && agent) {
        fprintf(stderr, "%s: --agent is only for --role owner\n", prog);
        return 2;
    }
    int64_t now = al_wall_ms(), expires_ms = 0;
    if (al__cli_parse_expires(prog, expires, now, &expires_ms)) return 2;
    if (al__cli_check_label(prog, label, sizeof row.label)) return 2;

    const char *path = al__cli_config_path(config);
    if (al_cli_load_config(path, &cfg) != AL_OK) return 2;
    if (agent && !al__cli_agent_declared(prog, cfg, agent, path)) {
        rc = 2;
        goto out;
    }
    if (al__cli_open_store(cfg, &st) != AL_OK) {
        rc = 1;
        goto out;
    }
    al__cli_actor(NULL, actor, sizeof actor);

    for (int attempt = 0;; attempt++) {
        memset(&row, 0, sizeof row);
        /* The agent-key recipe, with the admin prefix on secret and id (both
         * prefixes are four characters, so the lengths are unchanged). */
        al_key_generate(secret, kid);
        memcpy(secret, ADM_PREFIX, 4);
        memcpy(kid, ADM_PREFIX, 4);
        snprintf(row.id, sizeof row.id, "%s", kid);
        al_key_hash(secret, strlen(secret), row.hash);
        snprintf(row.role, sizeof row.role, "%s", role);
        if (agent) snprintf(row.agent, sizeof row.agent, "%s", agent);
        snprintf(row.label, sizeof row.label, "%s", label);
        row.created_ms = now;
        row.expires_ms = expires_ms;
        rc = al_store_admin_token_insert(st, &row);
        if (rc != AL_EEXIST || attempt == 2) break; /* an id collision: draw again */
    }
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot store the token: %s\n", prog, al_strerror(rc));
        rc = 1;
        goto out;
    }
    rc = al__cli_change_event(st, "admin_token.created", actor, "admin-token create", agent,
                              NULL, row.id, NULL);
    if (rc != AL_OK) {
        al_store_admin_token_revoke(st, row.id);
        fprintf(stderr, "%s: cannot record the change (%s); token %s revoked\n", prog,
                al_strerror(rc), row.id);
        rc = 1;
        goto out;
    }
    if (fprintf(stdout, "%s\n", secret) < 0 || fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        al_store_admin_token_revoke(st, row.id);
        al__cli_change_event(st, "admin_token.revoked", actor, "admin-token create", agent,
                             NULL, row.id, NULL);
        fprintf(stderr, "%s: cannot write the token to stdout (%s); token %s revoked\n", prog,
                strerror(e), row.id);
        rc = 1;
        goto out;
    }
    al__cli_fmt_time(expires_ms, when, sizeof when);
    fprintf(stderr, "created admin token %s role %s%s%s%s%s%s, expires %s\n", row.id, role,
            agent ? " for agent " : "", agent ? agent : "", row.label[0] ? " (label \"" : "",
            row.label, row.label[0] ? "\")" : "", expires_ms ? when : "never");
    fprintf(stderr, "the token is shown only this once: store it now\n");
    rc = 0;
out:
    explicit_bzero(secret, sizeof secret);
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- admin-token list ------------------------------------------------------- */

typedef struct tok_ctx {
    bool json;
    int64_t now;
    al__cli_table_t table;
    al_buf_t line;
    size_t n;
    /* revoke's lookup of an id it could not revoke */
    const char *want;
    bool found;
    al_admin_token_row_t row;
} tok_ctx_t;

static const char *token_status(const al_admin_token_row_t *r, int64_t now)
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

static void json_field(al_buf_t *b, const char *key, const char *v, size_t fieldsz)
{
    al_buf_printf(b, ",\"%s\":", key);
    al_buf_json_str(b, v, strnlen(v, fieldsz));
}

static int list_row(void *ud, const al_admin_token_row_t *r)
{
    tok_ctx_t *c = ud;
    c->n++;
    if (c->json) {
        al_buf_t *b = &c->line;
        al_buf_reset(b);
        al_buf_puts(b, "{\"id\":");
        al_buf_json_str(b, r->id, strnlen(r->id, sizeof r->id));
        json_field(b, "role", r->role, sizeof r->role);
        if (r->agent[0]) json_field(b, "agent", r->agent, sizeof r->agent);
        else al_buf_puts(b, ",\"agent\":null");
        json_field(b, "label", r->label, sizeof r->label);
        al_buf_printf(b, ",\"status\":\"%s\"", token_status(r, c->now));
        json_ms(b, "created_ms", r->created_ms);
        json_ms(b, "expires_ms", r->expires_ms);
        json_ms(b, "revoked_ms", r->revoked_ms);
        al_buf_puts(b, "}\n");
        if (!b->err) fwrite(b->p, 1, b->len, stdout);
        return ferror(stdout) ? 1 : 0;
    }
    char created[32], expires[48], revoked[32];
    al__cli_fmt_time(r->created_ms, created, sizeof created);
    al__cli_fmt_time(r->expires_ms, expires, sizeof expires);
    if (r->expires_ms && r->expires_ms <= c->now && !r->revoked_ms) {
        size_t n = strlen(expires);
        snprintf(expires + n, sizeof expires - n, " (expired)");
    }
    al__cli_fmt_time(r->revoked_ms, revoked, sizeof revoked);
    const char *cells[] = {r->id, r->role, r->agent[0] ? r->agent : "-",
                           r->label[0] ? r->label : "-", created, expires, revoked};
    al__cli_table_row(&c->table, cells);
    return ferror(stdout) ? 1 : 0;
}

static int token_list(int argc, char **argv)
{
    static const char prog[] = "airlock admin-token list";
    static const char *const heads[] = {"ID",      "ROLE",    "AGENT",  "LABEL",
                                        "CREATED", "EXPIRES", "REVOKED"};
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
    tok_ctx_t c;
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 0, &npos);
    if (rc == 1) {
        usage_admin(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    memset(&c, 0, sizeof c);
    c.json = json;
    c.now = al_wall_ms();
    al_buf_init(&c.line, 1 << 16);
    if (!json) al__cli_table_init(&c.table, stdout, AL_ARRAY_LEN(heads), heads, "lllllll");
    rc = al_store_admin_token_each(st, list_row, &c);
    rc = al__cli_list_end(prog, "admin tokens", rc, json ? NULL : &c.table, &c.line);
    if (rc == 0 && c.n == 0 && !json) fprintf(stderr, "no admin tokens\n");
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

/* --- admin-token revoke ------------------------------------------------------- */

static int find_row(void *ud, const al_admin_token_row_t *r)
{
    tok_ctx_t *c = ud;
    if (strcmp(r->id, c->want) != 0) return 0;
    c->found = true;
    c->row = *r;
    return 1;
}

static int token_revoke(int argc, char **argv)
{
    static const char prog[] = "airlock admin-token revoke";
    const char *config = NULL;
    const al__cli_flag_t flags[] = {{"--config", "-c", &config, NULL}};
    const char *pos[1];
    size_t npos;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    char actor[96], when[32];
    int rc = al__cli_parse(prog, argc, argv, 1, flags, AL_ARRAY_LEN(flags), pos, 1, &npos);
    if (rc == 1) {
        usage_admin(stdout);
        return 0;
    }
    if (rc) return usage_err();
    if (npos != 1 || !*pos[0]) {
        fprintf(stderr, "%s: which token? give its id (see airlock admin-token list)\n", prog);
        return usage_err();
    }
    const char *id = pos[0];
    if ((rc = al__cli_open(config, &cfg, &st)) != 0) return rc;
    /* The store's revoke is idempotent: look first, so a second revoke says
     * so instead of recording another change. */
    tok_ctx_t c;
    memset(&c, 0, sizeof c);
    c.want = id;
    rc = al_store_admin_token_each(st, find_row, &c);
    if (rc == AL_OK && !c.found) rc = AL_ENOTFOUND;
    if (rc == AL_OK && c.row.revoked_ms) {
        al__cli_fmt_time(c.row.revoked_ms, when, sizeof when);
        fprintf(stderr, "admin token %s was already revoked at %s\n", id, when);
        goto out;
    }
    if (rc == AL_OK) rc = al_store_admin_token_revoke(st, id);
    if (rc == AL_OK) {
        al__cli_actor(NULL, actor, sizeof actor);
        int erc = al__cli_change_event(st, "admin_token.revoked", actor, "admin-token revoke",
                                       c.row.agent[0] ? c.row.agent : NULL, NULL, id, NULL);
        fprintf(stderr, "revoked admin token %s (role %s)\n", id, c.row.role);
        if (erc != AL_OK) {
            fprintf(stderr, "%s: the token is revoked but the change could not be recorded: "
                            "%s\n", prog, al_strerror(erc));
            rc = 1;
        }
    } else if (rc == AL_ENOTFOUND) {
        fprintf(stderr, "%s: no such admin token '%s'\n", prog, id);
        rc = 1;
    } else {
        fprintf(stderr, "%s: cannot revoke '%s': %s\n", prog, id, al_strerror(rc));
        rc = 1;
    }
out:
    al_store_close(st);
    al_config_unref(cfg);
    return rc;
}

int al_cli_admin_token(int argc, char **argv)
{
    if (argc < 1) return usage_err();
    const char *sub = argv[0];
    if (!strcmp(sub, "create")) return token_create(argc, argv);
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return token_list(argc, argv);
    if (!strcmp(sub, "revoke")) return token_revoke(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_admin(stdout);
        return 0;
    }
    fprintf(stderr, "airlock admin-token: unknown subcommand '%s'\n", sub);
    return usage_err();
}
