/* keys.h - agent API keys: generation, hashing and the in-memory lookup table.
 *
 * A key is "alk_" + base64url(32 random bytes); only its SHA-256 is stored.
 * Workers look keys up in an immutable hash table (al_keytab_t) built by the
 * key watcher thread from the store and handed to each worker, so a lookup
 * never touches the disk and never takes a lock. */
#ifndef AL_KEYS_H
#define AL_KEYS_H

#include "store/store.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define AL_KEY_PREFIX "alk_"
#define AL_KEY_SECRET_MAX 64    /* "alk_" + 43 chars + NUL fits */

/* Make a new secret and its id. secret_out >= AL_KEY_SECRET_MAX bytes,
 * id_out >= 32 bytes. */
void al_key_generate(char *secret_out, char *id_out);
void al_key_hash(const char *secret, size_t len, uint8_t out[32]);

typedef struct al_keytab_entry {
    uint8_t hash[32];
    char id[32];
    char agent[64];
    int64_t expires_ms;        /* 0 = never */
    /* The one mutable part: when a worker last accepted the key (whole
     * seconds are enough; workers skip the store when it is that fresh), and
     * what the watcher last wrote to the store. */
    _Atomic int64_t last_used_ms;
    int64_t flushed_ms;        /* watcher thread only */
} al_keytab_entry_t;

typedef struct al_keytab al_keytab_t;

/* Build a table from store rows; revoked rows are left out.  Starts with one
 * reference. */
al_keytab_t *al_keytab_build(const al_key_row_t *rows, size_t n);
al_keytab_t *al_keytab_ref(al_keytab_t *t);
void al_keytab_unref(al_keytab_t *t);   /* NULL ok */
size_t al_keytab_size(const al_keytab_t *t);
/* Find by hash; NULL if absent. Pointer valid while the table is held. */
const al_keytab_entry_t *al_keytab_find(const al_keytab_t *t, const uint8_t hash[32]);

/* Note a use of the key (any thread, no lock: a relaxed store at most once
 * a second per key). */
void al_keytab_touch(const al_keytab_entry_t *e, int64_t now_ms);
/* Write uses noted since the last flush to the store (blocking; one thread
 * at a time, the key watcher). */
void al_keytab_flush_uses(al_keytab_t *t, al_store_t *s);

/* Load all keys from the store and build a table (blocking). */
int al_keytab_load(al_store_t *s, al_keytab_t **out /* OUT */);

#endif
