/* verify.h - the auditor's side of the audit log (notes/audit.md).
 *
 * Everything here works on an open SQLite handle of the store's database
 * (tables audit_log, audit_keys, audit_checkpoints, audit_state) and never
 * needs the gateway; the reading calls run in one read transaction (a
 * consistent snapshot beside a writing gateway) unless the caller has one
 * open on the handle already: al_audit_verify walks the records in rowid (seq) order
 * once, keeping 32 bytes per record (the leaf hashes) plus full details only
 * of the rows that break the expected pattern, and names every kind of
 * tampering the contract lists; the proof calls build RFC 6962 inclusion and
 * consistency proofs as JSON documents that the *_verify calls check offline
 * with nothing but a verifier key; al_audit_show decrypts a sealed payload;
 * al_audit_erase and al_audit_purge destroy data keys (crypto-shredding)
 * without touching the hashed records.  Texts read from the database or
 * from proof files are treated as hostile: bounded, validated, never
 * trusted to be well formed. */
#ifndef AL_AUDIT_VERIFY_H
#define AL_AUDIT_VERIFY_H

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/seal.h"
#include "util/common.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One problem line (no "audit: " prefix, no newline); borrowed for the call. */
typedef void (*al_audit_report_cb)(void *ud, const char *line);
/* A ready report callback: ud is an al_buf_t *, each line is appended with a
 * trailing "\n". */
void al_audit_report_buf(void *ud, const char *line);

typedef struct al_audit_verify_opts {
    /* Keys a checkpoint may be signed by; a checkpoint passes when any one of
     * them signed it.  n_verifiers 0: signatures are not checked (roots and
     * sizes still are) and stats.unsigned_checked counts them. */
    const al_verifier_t *verifiers;
    size_t n_verifiers;
    const char *origin;          /* expected checkpoint origin; NULL = any */
    /* Extra checkpoint notes (a witness file: notes separated by empty
     * lines), named "<notes_label>#<i>" (1-based) in messages. NULL = none. */
    const char *notes;
    size_t notes_len;
    const char *notes_label;     /* NULL = "file" */
    al_audit_report_cb report;   /* NULL = count only */
    void *report_ud;
} al_audit_verify_opts_t;

typedef struct al_audit_stats {
    uint64_t records;            /* rows read */
    uint64_t checkpoints;        /* checkpoint notes examined */
    uint64_t unsigned_checked;   /* of those, checked without a key */
    uint64_t problems;           /* lines reported */
    uint8_t root[AL_HASH_LEN];   /* root over all rows in rowid order */
} al_audit_stats_t;

/* Verify the log (notes/audit.md "verify: how tampering is named").  The
 * lines reported, each with the sequence number it is about:
 *   record at position P: unreadable (changed)         (P = the row's seq column)
 *   record N removed | records N..M removed
 *   record N inserted
 *   records N and M reordered
 *   record N moved | records N..M moved
 *   record N changed
 *   checkpoint K: not signed by NAME[ or NAME...]
 *   checkpoint K: unreadable (not a checkpoint note)
 *   checkpoint K: origin 'X' is not 'Y'
 *   checkpoint K (size S): root mismatch; first bad record in (A, B]
 *   log truncated: checkpoint K covers S records, the store has N (records N+1..S missing)
 *   log truncated: the appender's state covers S records, the store has N (records N+1..S missing)
 * K is the checkpoint's id, or LABEL#i for notes passed in o->notes.
 * Returns 0 when the walk completed (problems are in stats->problems),
 * AL_EIO on a database error (tables missing included), AL_ENOMEM. */
int al_audit_verify(sqlite3 *db, const al_audit_verify_opts_t *o,
                    al_audit_stats_t *stats /* OUT */);

/* The next note of a witness file (notes separated by empty lines; each is
 * its text, an empty line, then signature lines) at or after *off: true with
 * [*start, *start + *nlen) the note and *off past it, false at the end.  A
 * piece without an empty line is returned whole (it fails to open later). */
bool al_audit_note_next(const char *p, size_t len, size_t *off /* IN/OUT */,
                        size_t *start /* OUT */, size_t *nlen /* OUT */);

/* --- proofs ------------------------------------------------------------- */

/* The inclusion proof of record seq as the JSON document
 *   {"seq":N,"record":"<text>","leaf_hash":HEX,"tree_size":S,"proof":[HEX...],
 *    "checkpoint":"<note>"}
 * appended to out.  The checkpoint is note[0..note_len) when note is not NULL
 * (the caller picks it, e.g. a file's last note), else the stored checkpoint
 * with the highest id, which must cover seq.  The store's first S records
 * must hash to the checkpoint's root.  AL_ENOTFOUND (no such record, no
 * checkpoint covering it), AL_EINVAL (the store disagrees with the
 * checkpoint, an unreadable note), AL_EIO; err says which. */
int al_audit_proof(sqlite3 *db, uint64_t seq, const char *note, size_t note_len,
                   al_buf_t *out, char *err, size_t errlen);

/* The consistency proof between the stored checkpoints of sizes old_size and
 * new_size (0 = the checkpoint with the highest id) as
 *   {"old_size":A,"new_size":B,"old_root":HEX,"new_root":HEX,"proof":[HEX...],
 *    "old_checkpoint":"<note>","new_checkpoint":"<note>"}
 * appended to out.  AL_ENOTFOUND (no checkpoint of that size), AL_EINVAL
 * (old > new, the store disagrees with a checkpoint), AL_EIO. */
int al_audit_consistency(sqlite3 *db, uint64_t old_size, uint64_t new_size, al_buf_t *out,
                         char *err, size_t errlen);

typedef struct al_audit_proof_result {
    uint64_t seq;                /* inclusion: the record */
    uint64_t old_size;           /* consistency */
    uint64_t size;               /* the (new) checkpoint's tree size */
    char signer[AL_NOTE_NAME_MAX];
} al_audit_proof_result_t;

#define AL_AUDIT_PROOF_MAX (4u << 20)   /* bytes of a proof document accepted */

/* Check an inclusion proof document offline: the note is signed by one of
 * the verifiers, tree_size is the checkpoint's, the record is canonical JSON
 * whose "seq" is N and whose leaf hash is leaf_hash, and the path leads to
 * the signed root.  0, or AL_EPARSE (malformed document), AL_EINVAL (a check
 * failed); err names the check. */
int al_audit_proof_verify(const char *doc, size_t len, const al_verifier_t *verifiers,
                          size_t n_verifiers, al_audit_proof_result_t *res /* OUT */,
                          char *err, size_t errlen);
/* Same for a consistency document: both notes signed, sizes and roots equal
 * to the notes', the proof valid. */
int al_audit_consistency_verify(const char *doc, size_t len, const al_verifier_t *verifiers,
                                size_t n_verifiers, al_audit_proof_result_t *res /* OUT */,
                                char *err, size_t errlen);

/* --- payloads ----------------------------------------------------------- */

/* The show document of record seq appended to out:
 *   {"seq":N,"record":{...},"payload_state":"sealed|erased|none",
 *    "payload":{"received":"...","sent":"...","response":"...","truncated":["O"]}|null}
 * payload_state: none = no blob, erased = a blob without its data key,
 * sealed = both.  payload is null unless sealed and decrypted with keyring
 * (which may be NULL); when it cannot be, "payload_error":"<why>" is added.
 * AL_ENOTFOUND (no such record), AL_EIO, AL_ETOOBIG (out's cap). */
int al_audit_show(sqlite3 *db, uint64_t seq, const al_keyring_t *keyring, al_buf_t *out,
                  char *err, size_t errlen);

typedef struct al_audit_erase_by {
    const char *agent;           /* exactly one of agent / session / user */
    const char *session;
    const char *user;
    int64_t before_ms;           /* > 0: only records with ts_ms < before_ms */
} al_audit_erase_by_t;

/* Destroy the data keys of the matching records in one transaction: its
 * own (BEGIN IMMEDIATE; db needs a busy timeout when the gateway runs), or
 * the caller's when one is open on db.  *count: keys destroyed.  AL_EINVAL
 * (not exactly one criterion, or an empty one), AL_EIO. */
int al_audit_erase(sqlite3 *db, const al_audit_erase_by_t *by, uint64_t *count /* OUT */);
/* Destroy the data keys with ts_ms < before_ms (now - retention) in one
 * transaction.  AL_EINVAL (before_ms <= 0), AL_EIO. */
int al_audit_purge(sqlite3 *db, int64_t before_ms, uint64_t *count /* OUT */);

#endif
