/* store.h - the store: events, keys, and the writer thread.
 *
 * One interface, SQLite behind it today (PostgreSQL later, same calls).
 * The data plane talks to it only through al_store_reserve/al_store_submit,
 * which never block: a writer thread drains a bounded queue into the
 * database in batched transactions (WAL).  Admission reserves a slot first,
 * so an admitted request can always emit its event; when no slot is left the
 * gateway answers 503 instead of dropping a record.
 *
 * The other calls (keys, events queries) are blocking and are for the CLI,
 * the admin thread and the key watcher thread, never for a loop thread. */
#ifndef AL_STORE_H
#define AL_STORE_H

#include "store/event.h"
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct al_store al_store_t;

typedef struct al_store_opts {
    uint32_t queue_capacity;    /* events; >= 1 */
    uint32_t flush_interval_ms; /* max time an event waits in the queue */
    uint32_t batch_max;         /* max events per transaction */
    /* Added; 0 = the default.  Mostly for tests. */
    uint32_t busy_timeout_ms;   /* wait for another writer's lock; default 5000 */
    uint32_t retry_ms;          /* first retry sleep after a failed write, growing
                                   linearly, at most 1 s; default 100 */
    bool audit_off;             /* audit.enabled: false - no audit records */
    bool sync_commit;           /* audit.durability: sync - commit as soon as events
                                   are queued (group commit) with synchronous=FULL */
} al_store_opts_t;

/* Open (creating if needed) the store at url ("sqlite://PATH" or a plain
 * path).  Creates the schema.  Does not start the writer.  On failure returns
 * a negative code and fills err. */
int al_store_open(const char *url, const al_store_opts_t *opts,
                  al_store_t **out /* OUT */, char *err, size_t errlen);
/* The audit appenders' options (keyring, signer, checkpoint policy,
 * witness callback: see audit/chain.h; the pointers must outlive the
 * store), the retention window of sealed payloads (0 = keep), and the
 * commit callback for events with a ticket, called on the writer thread
 * after their transaction committed (ok) or was given up (!ok).  Before
 * al_store_start. */
struct al_audit_opts;
void al_store_set_audit(al_store_t *s, const struct al_audit_opts *o, uint32_t retention_days);
typedef void (*al_store_commit_fn)(void *ud, void *ticket, bool ok);
void al_store_set_commit_cb(al_store_t *s, al_store_commit_fn fn, void *ud);
/* Run `fn(ud, db)` with the query connection under its lock (the admin
 * thread's audit reads); returns fn's value. */
struct sqlite3;
int al_store_with_db(al_store_t *s, int (*fn)(void *ud, struct sqlite3 *db), void *ud);
/* The database file path. */
const char *al_store_path(const al_store_t *s);

/* Start the writer thread (the data plane path).  0 or AL_EIO. */
int al_store_start(al_store_t *s);
/* Drain everything queued, stop the writer (if started), close. NULL ok. */
void al_store_close(al_store_t *s);

/* --- data plane (any thread, never blocks) ---------------------------- */
/* Reserve one queue slot.  0, or AL_EFULL when the queue cannot promise room. */
int al_store_reserve(al_store_t *s);
/* Enqueue an event, consuming one reservation.  Never fails, never blocks. */
void al_store_submit(al_store_t *s, const al_event_t *e);
/* Give a reservation back unused. */
void al_store_unreserve(al_store_t *s);
/* Queued + reserved events, for metrics. */
size_t al_store_depth(const al_store_t *s);
/* Events written so far and write failures, for metrics and readiness. */
uint64_t al_store_written(const al_store_t *s);
uint64_t al_store_write_errors(const al_store_t *s);
/* True when the last write (or a probe at open) succeeded. */
bool al_store_writable(const al_store_t *s);
/* Events given up on (counted in write_errors too): a batch that failed 10
 * times in a row, or a row the database refused (duplicate id).  Each loss
 * is logged at error level. */
uint64_t al_store_lost(const al_store_t *s);

/* --- keys (blocking) --------------------------------------------------- */
typedef struct al_key_row {
    char id[32];               /* "key_" + 16 hex */
    uint8_t hash[32];          /* SHA-256 of the secret */
    char agent[64];
    char label[128];
    int64_t created_ms;
    int64_t expires_ms;        /* 0 = never */
    int64_t revoked_ms;        /* 0 = not revoked */
    int64_t last_used_ms;      /* 0 = never (best effort) */
} al_key_row_t;

/* Insert a key row (id and hash already filled by the caller). */
int al_store_key_insert(al_store_t *s, const al_key_row_t *row);
/* Mark revoked; AL_ENOTFOUND if no such id. */
int al_store_key_revoke(al_store_t *s, const char *id);
/* Call cb for each key (revoked included), oldest first. cb returns non-zero
 * to stop. */
/* (The *_each calls hold the store's query lock while calling cb: cb must not
 * call into the same store.  They return 0 also when cb stopped early.) */
typedef int (*al_key_row_cb)(void *ud, const al_key_row_t *row);
int al_store_key_each(al_store_t *s, al_key_row_cb cb, void *ud);
/* A number that changes whenever another connection commits to the
 * database (PRAGMA data_version) plus local commits; used by the watcher to
 * reload keys cheaply. */
int al_store_data_version(al_store_t *s, int64_t *out /* OUT */);
/* Like al_store_data_version but changes only when the keys table changes
 * (insert, revoke, expiry/agent/hash edits, delete; by any connection or
 * process; a trigger bumps a counter in the database).  Event writes do not
 * move it, so a key watcher polling this reloads only when keys changed. */
int al_store_keys_version(al_store_t *s, int64_t *out /* OUT */);
/* Record a key's last use (best effort, does not move keys_version).
 * AL_ENOTFOUND if no such id. */
int al_store_key_touch(al_store_t *s, const char *id, int64_t used_ms);

/* --- events (blocking) ------------------------------------------------- */
typedef struct al_event_filter {
    const char *agent;         /* NULL = any */
    int64_t since_ms;          /* 0 = any */
    uint32_t limit;            /* 0 = no limit */
    const char *kind;          /* NULL = any; "request", "kill.set", ... */
    int64_t until_ms;          /* 0 = any; events strictly before this */
    const char *session;       /* NULL = any; x-airlock-session-id */
} al_event_filter_t;
typedef int (*al_event_cb)(void *ud, const al_event_t *e);
/* Oldest first within the filter (the newest `limit` if limit is set). */
int al_store_events_each(al_store_t *s, const al_event_filter_t *f,
                         al_event_cb cb, void *ud);
/* Count events matching the filter. */
int al_store_events_count(al_store_t *s, const al_event_filter_t *f, uint64_t *out /* OUT */);

/* Write one event now, from a process or thread that is not the data plane
 * (CLI changes, the admin thread, the escalation reaper).  Blocking. */
int al_store_event_insert(al_store_t *s, const al_event_t *e);

/* --- escalations (blocking) ---------------------------------------------- */
#define AL_ESC_REQUEST_MAX 65536   /* request bytes kept with an escalation */
typedef struct al_esc_row {
    char id[40];               /* "esc_" + 24 hex */
    int64_t created_ms;
    int64_t expires_ms;        /* open ones close as timeout after this */
    char agent[64];
    char key_id[32];
    char route[64];
    char model[64];            /* what the client asked for */
    char request_id[129];
    char event_id[32];
    char mode[8];              /* "defer" | "hold" */
    bool stream;               /* the client asked for a stream */
    char reason[256];          /* why: "all targets failed: http_5xx" ... */
    char attempts[1536];       /* as in the event */
    char *request;             /* the request body (malloc'd, NUL-terminated,
                                  truncated to AL_ESC_REQUEST_MAX); may be NULL */
    char status[12];           /* "open" | "resolved" | "rejected" | "timeout" */
    char *answer;              /* resolved: the person's answer text;
                                  rejected: the reason; malloc'd or NULL */
    char resolved_by[96];      /* actor */
    int64_t resolved_ms;       /* 0 while open */
} al_esc_row_t;
void al_esc_row_free(al_esc_row_t *r);     /* frees request and answer */

/* Insert an open escalation (status forced to "open").  AL_EEXIST on a
 * duplicate id. */
int al_store_esc_insert(al_store_t *s, const al_esc_row_t *row);
/* Fetch one; AL_ENOTFOUND.  The caller frees with al_esc_row_free. */
int al_store_esc_get(al_store_t *s, const char *id, al_esc_row_t *out /* OUT */);
/* Close an open escalation: status "resolved" (answer = text), "rejected"
 * (answer = reason) or "timeout".  AL_ENOTFOUND when no such id, AL_ESTATE
 * when it is no longer open (the row is untouched: first close wins). */
int al_store_esc_close(al_store_t *s, const char *id, const char *status,
                       const char *answer, const char *by, int64_t now_ms);
typedef struct al_esc_filter {
    const char *status;        /* NULL = any */
    const char *agent;         /* NULL = any */
    uint32_t limit;            /* 0 = no limit (newest `limit`, oldest first) */
} al_esc_filter_t;
/* Rows passed to cb have request/answer owned by the store (valid during the
 * call only). */
typedef int (*al_esc_cb)(void *ud, const al_esc_row_t *row);
int al_store_esc_each(al_store_t *s, const al_esc_filter_t *f, al_esc_cb cb, void *ud);
/* Ids of open escalations with expires_ms <= now, at most max, into ids
 * (each 40 bytes); *n set.  The caller closes each with al_store_esc_close. */
int al_store_esc_expired(al_store_t *s, int64_t now_ms, char (*ids)[40], size_t max,
                         size_t *n /* OUT */);
/* Changes whenever the escalations table changes (any process). */
int al_store_esc_version(al_store_t *s, int64_t *out /* OUT */);

/* --- admin tokens (blocking) --------------------------------------------- */
typedef struct al_admin_token_row {
    char id[32];               /* "adm_" + 16 hex */
    uint8_t hash[32];          /* SHA-256 of the secret */
    char role[16];             /* admin | operator | auditor | viewer | owner */
    char agent[64];            /* owner role: the agent it owns, else "" */
    char label[128];
    int64_t created_ms;
    int64_t expires_ms;        /* 0 = never */
    int64_t revoked_ms;        /* 0 = not revoked */
} al_admin_token_row_t;
int al_store_admin_token_insert(al_store_t *s, const al_admin_token_row_t *row);
/* Find a live (not revoked, not expired at now_ms) token by hash; AL_ENOTFOUND. */
int al_store_admin_token_find(al_store_t *s, const uint8_t hash[32], int64_t now_ms,
                              al_admin_token_row_t *out /* OUT */);
int al_store_admin_token_revoke(al_store_t *s, const char *id);
typedef int (*al_admin_token_cb)(void *ud, const al_admin_token_row_t *row);
int al_store_admin_token_each(al_store_t *s, al_admin_token_cb cb, void *ud);
/* One token by id (revoked or not); AL_ENOTFOUND. */
int al_store_admin_token_get(al_store_t *s, const char *id, al_admin_token_row_t *out /* OUT */);

/* --- kill switches (blocking) -------------------------------------------- */
typedef struct al_kill_row {
    char scope[12];            /* all | agent | team | provider | model */
    char target[129];          /* "" for all */
    char reason[256];
    bool drain;
    int64_t created_ms;
    char created_by[96];       /* actor */
} al_kill_row_t;
/* Turn a switch on (replacing the reason/drain of an active one with the
 * same scope and target).  AL_EINVAL on a bad scope. */
int al_store_kill_set(al_store_t *s, const al_kill_row_t *row);
/* Turn it off; AL_ENOTFOUND when it was not on. */
int al_store_kill_clear(al_store_t *s, const char *scope, const char *target);
typedef int (*al_kill_cb)(void *ud, const al_kill_row_t *row);
/* Active switches, oldest first. */
int al_store_kill_each(al_store_t *s, al_kill_cb cb, void *ud);
/* Changes whenever the switches change (any process). */
int al_store_kill_version(al_store_t *s, int64_t *out /* OUT */);

/* --- aggregates for the inventory and budgets (blocking) ------------------- */
typedef struct al_agent_stats {
    uint64_t requests;         /* request events since `since` */
    uint64_t errors;           /* of those, status >= 500 or outcome error */
    double p95_latency_ms;     /* -1 when no request */
    double spend_usd;          /* sum of known costs */
} al_agent_stats_t;
/* Request events (kind request) of agent since since_ms. */
int al_store_agent_stats(al_store_t *s, const char *agent, int64_t since_ms,
                         al_agent_stats_t *out /* OUT */);
/* Sum of known costs per agent since since_ms: cb(agent, usd) per agent. */
typedef int (*al_spend_cb)(void *ud, const char *agent, double usd);
int al_store_spend_by_agent(al_store_t *s, int64_t since_ms, al_spend_cb cb, void *ud);
/* The same per scoped token (cb's name is the token id). */
int al_store_spend_by_token(al_store_t *s, int64_t since_ms, al_spend_cb cb, void *ud);
/* Distinct models (the alias asked for) an agent used since since_ms, with
 * request counts. */
typedef int (*al_model_use_cb)(void *ud, const char *model, uint64_t requests);
int al_store_models_used(al_store_t *s, const char *agent, int64_t since_ms, al_model_use_cb cb,
                         void *ud);

#endif
