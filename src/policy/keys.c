/* keys.c - agent API keys: generation, hashing and the immutable lookup
 * table.
 *
 * A secret is "alk_" + base64url(32 bytes from the CSPRNG) (47 chars); its
 * id is "key_" + 16 hex chars from 8 more random bytes; only SHA-256 of the
 * secret is ever stored.  The lookup table is built once (by the key watcher
 * thread) and never changes afterwards, so workers read it without locks and
 * hand it around with an atomic reference count.  It is open addressing with
 * linear probing over a power-of-two slot array at most half full; a slot
 * holds an entry index + 1 (0 = empty), the probe starts at the first 8 bytes
 * of the hash (already uniformly distributed, no need to re-hash) and a match
 * compares all 32 bytes.  Revoked rows are left out; expired rows are kept
 * with their expiry so the caller can answer "key expired" rather than
 * "unknown key". */
#include "policy/keys.h"
#include "util/common.h"
#include "util/log.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct al_keytab {
    atomic_int refs;
    size_t n;                   /* entries */
    size_t mask;                /* slots - 1 */
    uint32_t *slots;            /* entry index + 1, 0 = empty */
    al_keytab_entry_t *entries;
};

void al_key_generate(char *secret_out, char *id_out)
{
    uint8_t r[32], idr[8];
    al_random(r, sizeof r);
    al_random(idr, sizeof idr);
    memcpy(secret_out, AL_KEY_PREFIX, sizeof AL_KEY_PREFIX - 1);
    al_base64url(r, sizeof r, secret_out + sizeof AL_KEY_PREFIX - 1);
    memcpy(id_out, "key_", 4);
    al_hex(idr, sizeof idr, id_out + 4);
}

/* Fetch the digest once: an implicit fetch on every call costs a lookup in
 * OpenSSL's provider tables, and this runs once per authenticated request. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void al_key_hash(const char *secret, size_t len, uint8_t out[32])
{
    unsigned int outlen = 0;
    pthread_once(&sha256_once, sha256_init);
    AL_ASSERT(sha256_md != NULL);
    int ok = EVP_Digest(secret, len, out, &outlen, sha256_md, NULL);
    AL_ASSERT(ok == 1 && outlen == 32);
}

static uint64_t slot_key(const uint8_t hash[32])
{
    uint64_t k;
    memcpy(&k, hash, sizeof k);
    return k;
}

al_keytab_t *al_keytab_build(const al_key_row_t *rows, size_t n)
{
    al_keytab_t *t = al_calloc(1, sizeof *t);
    size_t nslots = 8;
    AL_ASSERT(n < UINT32_MAX / 4);
    while (nslots < 2 * n) nslots *= 2;
    atomic_init(&t->refs, 1);
    t->mask = nslots - 1;
    t->slots = al_calloc(nslots, sizeof *t->slots);
    t->entries = al_calloc(n ? n : 1, sizeof *t->entries);
    for (size_t i = 0; i < n; i++) {
        const al_key_row_t *r = &rows[i];
        if (r->revoked_ms != 0) continue;
        size_t pos = (size_t)slot_key(r->hash) & t->mask;
        bool dup = false;
        while (t->slots[pos]) {
            if (memcmp(t->entries[t->slots[pos] - 1].hash, r->hash, 32) == 0) {
                dup = true;
                break;
            }
            pos = (pos + 1) & t->mask;
        }
        if (dup) {
            /* The store keeps hashes unique; two rows with one hash would
             * make the agent ambiguous, so the older row wins. */
            al_warn("keys: key %.31s has the same hash as an older key; ignored", r->id);
            continue;
        }
        al_keytab_entry_t *e = &t->entries[t->n];
        memcpy(e->hash, r->hash, 32);
        al_event_set(e->id, sizeof e->id, r->id, strnlen(r->id, sizeof r->id));
        al_event_set(e->agent, sizeof e->agent, r->agent, strnlen(r->agent, sizeof r->agent));
        e->expires_ms = r->expires_ms;
        atomic_init(&e->last_used_ms, r->last_used_ms);
        e->flushed_ms = r->last_used_ms;
        t->slots[pos] = (uint32_t)(++t->n);
    }
    return t;
}

al_keytab_t *al_keytab_ref(al_keytab_t *t)
{
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void al_keytab_unref(al_keytab_t *t)
{
    if (!t) return;
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    free(t->slots);
    free(t->entries);
    free(t);
}

size_t al_keytab_size(const al_keytab_t *t)
{
    return t ? t->n : 0;
}

const al_keytab_entry_t *al_keytab_find(const al_keytab_t *t, const uint8_t hash[32])
{
    if (!t) return NULL;
    size_t pos = (size_t)slot_key(hash) & t->mask;
    /* At most half the slots are used, so an empty slot ends every probe. */
    while (t->slots[pos]) {
        const al_keytab_entry_t *e = &t->entries[t->slots[pos] - 1];
        if (memcmp(e->hash, hash, 32) == 0) return e;
        pos = (pos + 1) & t->mask;
    }
    return NULL;
}

void al_keytab_touch(const al_keytab_entry_t *e, int64_t now_ms)
{
    al_keytab_entry_t *m = (al_keytab_entry_t *)e; /* the one mutable field */
    int64_t prev = atomic_load_explicit(&m->last_used_ms, memory_order_relaxed);
    if (now_ms - prev >= 1000) atomic_store_explicit(&m->last_used_ms, now_ms, memory_order_relaxed);
}

void al_keytab_flush_uses(al_keytab_t *t, al_store_t *s)
{
    for (size_t i = 0; t && i < t->n; i++) {
        al_keytab_entry_t *e = &t->entries[i];
        int64_t used = atomic_load_explicit(&e->last_used_ms, memory_order_relaxed);
        if (used > e->flushed_ms && al_store_key_touch(s, e->id, used) == AL_OK) e->flushed_ms = used;
    }
}

typedef struct load_ctx {
    al_key_row_t *rows;
    size_t n, cap;
} load_ctx_t;

static int load_row(void *ud, const al_key_row_t *row)
{
    load_ctx_t *c = ud;
    if (row->revoked_ms != 0) return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->rows = al_realloc(c->rows, c->cap * sizeof *c->rows);
    }
    c->rows[c->n++] = *row;
    return 0;
}

int al_keytab_load(al_store_t *s, al_keytab_t **out)
{
    load_ctx_t c = {0};
    int rc = al_store_key_each(s, load_row, &c);
    *out = NULL;
    if (rc == AL_OK) *out = al_keytab_build(c.rows, c.n);
    free(c.rows);
    return rc;
}
