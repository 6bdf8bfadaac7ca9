/* chain.h - the audit appender: events become records of the Merkle log.
 *
 * The store calls it inside its own write transactions (the writer thread's
 * batches and the blocking inserts of the CLI and admin thread), so an
 * event and its audit record commit together or not at all.  Each
 * transaction starts with al_audit_begin, which reads the log's tail
 * (audit_state: size, last leaf hash, Merkle frontier, last checkpoint) from
 * the database itself, so several connections and processes append to one
 * chain; al_audit_append turns an event into a canonical JSON record (see
 * notes/audit.md) with its sequence number and the previous record's leaf
 * hash, seals its payload when one was captured, and inserts it;
 * al_audit_end writes the tail back and, when due and a signer is set,
 * signs a checkpoint into audit_checkpoints.  After the commit,
 * al_audit_committed hands new checkpoints to the witness callback; after a
 * rollback al_audit_rolled_back forgets them. */
#ifndef AL_AUDIT_CHAIN_H
#define AL_AUDIT_CHAIN_H

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/seal.h"
#include "store/event.h"
#include "util/common.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* A request's captured bodies (capture: full), each capped. */
typedef struct al_audit_payload {
    al_buf_t part[3];          /* 0 'R' as received, 1 'S' as sent upstream, 2 'O' response */
    bool truncated[3];
    bool present[3];
} al_audit_payload_t;

/* A payload whose parts hold at most cap bytes each. */
al_audit_payload_t *al_audit_payload_new(size_t cap);
/* Replace part i's bytes (as much as fits; the rest marks it truncated). */
void al_audit_payload_set(al_audit_payload_t *p, unsigned i, const void *data, size_t len);
void al_audit_payload_add(al_audit_payload_t *p, unsigned i, const void *data, size_t len);
void al_audit_payload_free(al_audit_payload_t *p);   /* NULL ok */

/* Schema of the audit tables (appended to the store's schema). */
extern const char al_audit_schema_sql[];

typedef void (*al_audit_cp_fn)(void *ud, const char *note, size_t len);

typedef struct al_audit_opts {
    const al_keyring_t *keyring;   /* capture: full; NULL = payloads dropped */
    const char *kid;               /* master key id sealing new payloads */
    const al_signer_t *signer;     /* NULL = no checkpoints */
    const char *origin;            /* NULL = "airlock" */
    uint32_t cp_every;             /* records; 0 = 1000 */
    uint32_t cp_interval_ms;       /* 0 = 10000 */
    al_audit_cp_fn on_checkpoint;  /* after the commit; may be NULL */
    void *ud;
} al_audit_opts_t;

typedef struct al_audit al_audit_t;

/* One appender per database connection (its statements are cached). The
 * options' pointers must outlive it. */
int al_audit_new(const al_audit_opts_t *o, al_audit_t **out /* OUT */);
void al_audit_free(al_audit_t *a);   /* finalizes statements; NULL ok */

/* Inside a write transaction on db (BEGIN IMMEDIATE already done). */
int al_audit_begin(al_audit_t *a, sqlite3 *db);
int al_audit_append(al_audit_t *a, sqlite3 *db, const al_event_t *e);
/* force_cp: sign a checkpoint now if the tree grew since the last one. */
int al_audit_end(al_audit_t *a, sqlite3 *db, int64_t now_ms, bool force_cp);
void al_audit_committed(al_audit_t *a);
void al_audit_rolled_back(al_audit_t *a);
/* True when records exist past the last checkpoint and a signer is set;
 * *due_ms (unix ms) is when the interval makes one due. */
bool al_audit_cp_pending(const al_audit_t *a, int64_t *due_ms /* OUT */);

/* The canonical record of e (for tests and the appender): seq, prev, and
 * the payload description (a canonical JSON object or NULL). */
int al_audit_record(const al_event_t *e, uint64_t seq, const uint8_t prev[AL_HASH_LEN],
                    const char *payload_json, al_buf_t *out);

#endif
