/* cli.h - the `airlock keys`, `events`, `escalations`, `admin-token`,
 * `status`, `agents`, `kill` and `unkill` subcommands.
 *
 * main.c calls each with the arguments after the subcommand name (for
 * `airlock keys create --config F` argv is {"create", "--config", "F"}) and
 * returns what they return as the process exit code: 0 success, 1 failure
 * (store error, no such key), 2 usage or configuration error.  Secrets go to
 * stdout only from `keys create` and `admin-token create`; every message goes
 * to stderr.  `--config` (or -c) defaults to $AIRLOCK_CONFIG, then
 * airlock.yaml. */
#ifndef AL_CLI_H
#define AL_CLI_H

#include "config/config.h"
#include "store/store.h"
#include "util/common.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* keys create | list | revoke */
int al_cli_keys(int argc, char **argv);
/* events list */
int al_cli_events(int argc, char **argv);
/* escalations list | show | resolve: the people's side of `final: escalate`.
 * resolve exits 1 when the id is unknown or no longer open. */
int al_cli_escalations(int argc, char **argv);
/* admin-token create | list | revoke: bearer tokens for the admin API; the
 * secret goes to stdout once, from create. */
int al_cli_admin_token(int argc, char **argv);
/* status: the running gateway's state through GET /admin/v1/status on the
 * admin listener (blocking libcurl easy call; needs curl_global_init). */
int al_cli_status(int argc, char **argv);
/* agents list | show NAME | permissions NAME: the inventory with live
 * figures (policy/inventory.h), as text or --json (what the admin API
 * answers).  Exits 1 for an agent the configuration does not declare. */
int al_cli_agents(int argc, char **argv);
/* kill (--agent A | --team T | --provider P | --model M | --all) --reason TEXT
 * [--drain] [--by NAME] [--force], and `kill list [--json]`: names the
 * configuration does not declare are refused (2) unless --force.  Records a
 * kill.set event. */
int al_cli_kill(int argc, char **argv);
/* unkill (same scope flags) [--by NAME]: exits 1 when the switch was not on.
 * Records a kill.cleared event. */
int al_cli_unkill(int argc, char **argv);
/* `airlock guard scan|eval` (cli_guard.c). */
int al_cli_guard(int argc, char **argv);
/* `airlock audit keygen|verify|proof|consistency|show|erase|purge|...` (cli_audit.c). */
int al_cli_audit(int argc, char **argv);

/* Load the configuration at path for a CLI command: provider secrets named
 * by api_key_env are looked up in the environment but a missing one reads as
 * "" instead of failing, so key and event commands work on a host without the
 * provider credentials.  Prints the error to stderr itself.  0 with *out
 * holding one reference, or AL_EIO (unreadable) / AL_EINVAL (invalid). */
int al_cli_load_config(const char *path, al_config_t **out /* OUT */);

/* --- shared by the cli_*.c files, not API ------------------------------- */

/* One flag: value flags set *value to the argument ("--agent A" or
 * "--agent=A"); boolean flags set *on. alias is a short form or NULL. */
typedef struct al__cli_flag {
    const char *name;
    const char *alias;
    const char **value;
    bool *on;
} al__cli_flag_t;

/* Parse argv[first..argc): flags from the table, anything else a positional
 * (at most maxpos, stored in pos, counted in *npos); "--" ends the flags.
 * Returns 0; 1 when -h/--help was given; 2 after printing the problem to
 * stderr (unknown flag, missing value, too many arguments). */
int al__cli_parse(const char *prog, int argc, char **argv, int first,
                  const al__cli_flag_t *flags, size_t nflags, const char **pos,
                  size_t maxpos, size_t *npos /* OUT */);
/* The --config value, else $AIRLOCK_CONFIG, else "airlock.yaml". */
const char *al__cli_config_path(const char *flag_value);
/* Open the store the configuration names, for blocking queries (the writer
 * is not started).  Prints the error; 0 or a negative code. */
int al__cli_open_store(const al_config_t *c, al_store_t **out /* OUT */);
/* Load the configuration (al__cli_config_path(config_flag)) and open its
 * store.  Returns the exit code: 0 with *cfg and *st held (the caller
 * closes the store and unrefs the config), 2 when the configuration does not
 * load, 1 when the store does not open; on failure both are NULL and the
 * problem has been printed. */
int al__cli_open(const char *config_flag, al_config_t **cfg /* OUT */,
                 al_store_t **st /* OUT */);
/* --limit N (a whole number up to UINT32_MAX, 0 = all) into *out.  Prints
 * the problem; 0 or 2 (the exit code). */
int al__cli_parse_limit(const char *prog, const char *arg, uint32_t *out /* OUT */);
/* --expires: NULL or "never" gives 0, else a positive duration ("30d")
 * added to now.  Prints the problem; 0 or 2 (the exit code). */
int al__cli_parse_expires(const char *prog, const char *arg, int64_t now,
                          int64_t *expires_ms /* OUT */);
/* --label: shorter than max bytes, no control characters.  Prints the
 * problem; 0 or 2 (the exit code). */
int al__cli_check_label(const char *prog, const char *label, size_t max);
/* true when agent is declared in cfg; otherwise prints which agents are
 * (path is the configuration file named in the message). */
bool al__cli_agent_declared(const char *prog, const al_config_t *cfg, const char *agent,
                            const char *path);
/* "2024-05-01T12:00:00Z" (seconds) or "-" when ms <= 0. out >= 32. */
void al__cli_fmt_time(int64_t ms, char *out, size_t outsz);
/* "cli:" + by (else $USER, else "unknown") into out, control characters
 * shown as '?', truncated to fit (out >= 8). (cli_admin.c) */
void al__cli_actor(const char *by, char *out, size_t outsz);
/* Write a change record now (al_store_event_insert): kind, actor, method
 * "CLI", path (the command, "escalations resolve"), outcome "ok", status 200,
 * ts now; agent, escalation_id, key_id (the key or admin token acted on) and
 * detail (a JSON object, at most the event's detail size) may be NULL.  Prints nothing; 0 or the store's code. (cli_admin.c) */
int al__cli_change_event(al_store_t *st, const char *kind, const char *actor,
                         const char *path, const char *agent, const char *escalation_id,
                         const char *key_id, const char *detail);

/* An aligned text table.  The first AL__CLI_TABLE_BUFFER rows are held to
 * measure the columns; later rows are printed at once with those widths, so
 * memory stays bounded however many rows come.  Control characters in cells
 * are shown as '?'. */
#define AL__CLI_TABLE_BUFFER 1000
#define AL__CLI_TABLE_COLS 12
typedef struct al__cli_table {
    FILE *out;
    size_t ncols;
    const char *heads[AL__CLI_TABLE_COLS];
    bool right[AL__CLI_TABLE_COLS];   /* right-aligned (numbers) */
    size_t width[AL__CLI_TABLE_COLS];
    char **cells;                     /* held rows, ncols cells each */
    size_t nrows;
    bool flushed;
} al__cli_table_t;

/* heads: ncols names; align: ncols chars, 'l' or 'r'. */
void al__cli_table_init(al__cli_table_t *t, FILE *out, size_t ncols, const char *const *heads,
                        const char *align);
void al__cli_table_row(al__cli_table_t *t, const char *const *cells);
/* Print what is held (if anything) and free. */
void al__cli_table_end(al__cli_table_t *t);
/* The end of a list command's store walk (walk_rc its result): ends table
 * (NULL for --json output), frees line, then returns the exit code: 1 after
 * printing "PROG: cannot read WHAT: ERROR" when walk_rc is a failure, 1 when
 * stdout cannot be flushed or has an error, else 0. */
int al__cli_list_end(const char *prog, const char *what, int walk_rc, al__cli_table_t *table,
                     al_buf_t *line);

#endif
