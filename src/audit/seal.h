/* seal.h - envelope encryption of audit payloads.
 *
 * Each record's payload is encrypted with a fresh 256-bit data key
 * (AES-256-GCM, 12-byte random nonce, 16-byte tag); the data key itself is
 * encrypted ("wrapped") with a master key chosen by its key id, also with
 * AES-256-GCM.  Deleting the wrapped data key makes the payload unreadable
 * for good (crypto-shredding), while the ciphertext and the chain that
 * commits to it stay.  Master keys live in a keyring loaded from files or
 * environment variables; rotating means adding a new id and sealing new
 * records with it, old records keep naming the id that wrapped them.
 *
 * Blob layout: nonce(12) || ciphertext || tag(16).
 * Wrapped key layout: nonce(12) || encrypted data key(32) || tag(16).
 * The associated data (aad) binds a blob and its wrapped key to their
 * record; the caller passes the same bytes to seal and open. */
#ifndef AL_AUDIT_SEAL_H
#define AL_AUDIT_SEAL_H

#include "util/common.h"
#include <stddef.h>
#include <stdint.h>

#define AL_SEAL_WRAPPED_LEN 60
#define AL_SEAL_OVERHEAD 28          /* blob bytes beyond the plaintext */
#define AL_SEAL_KID_MAX 64

typedef struct al_keyring al_keyring_t;

int al_keyring_new(al_keyring_t **out /* OUT */);
void al_keyring_free(al_keyring_t *k);                /* wipes the keys; NULL ok */
/* kid: 1..63 chars of [A-Za-z0-9._-].  AL_EINVAL bad kid, AL_EEXIST twice. */
int al_keyring_add(al_keyring_t *k, const char *kid, const uint8_t key[32]);
/* Key text: 64 hex digits, or base64 of exactly 32 bytes; surrounding
 * whitespace ignored.  A file may also hold the 32 raw bytes.  err names
 * the file or variable (never the key). */
int al_keyring_add_text(al_keyring_t *k, const char *kid, const char *text, size_t len,
                        char *err, size_t errlen);
int al_keyring_add_file(al_keyring_t *k, const char *kid, const char *path, char *err,
                        size_t errlen);
int al_keyring_add_env(al_keyring_t *k, const char *kid, const char *var, char *err,
                       size_t errlen);
bool al_keyring_has(const al_keyring_t *k, const char *kid);
size_t al_keyring_count(const al_keyring_t *k);

/* Encrypt pt under a fresh data key: blob appended to out, the data key
 * wrapped by master key kid into wrapped.  AL_ENOTFOUND unknown kid. */
int al_seal(const al_keyring_t *k, const char *kid, const void *pt, size_t len,
            const void *aad, size_t aadlen, al_buf_t *out,
            uint8_t wrapped[AL_SEAL_WRAPPED_LEN] /* OUT */);
/* Unwrap with kid, decrypt blob; plaintext appended to out.  AL_ENOTFOUND
 * unknown kid, AL_EINVAL when a tag does not verify (wrong key, wrong aad,
 * altered bytes), AL_EPARSE when blob is shorter than the overhead. */
int al_unseal(const al_keyring_t *k, const char *kid, const uint8_t wrapped[AL_SEAL_WRAPPED_LEN],
              const void *blob, size_t bloblen, const void *aad, size_t aadlen, al_buf_t *out);

/* A new master key as 64 hex digits + NUL into out (>= 65 bytes). */
int al_seal_master_keygen(char *out, size_t outsz);

#endif
