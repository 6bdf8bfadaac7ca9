/* note.h - Ed25519 signed notes and transparency-log checkpoints.
 *
 * The formats are those of the transparency-dev ecosystem (the Go
 * sumdb/note package and the tlog checkpoint), so other tools can read
 * airlock's checkpoints:
 *   - a signer key is the text "PRIVATE+KEY+<name>+<hash>+<base64(0x01 ||
 *     32-byte seed)>", a verifier key "<name>+<hash>+<base64(0x01 ||
 *     32-byte public key)>", where <hash> is 8 lower-case hex digits of the
 *     key hash: the first 4 bytes (big-endian) of SHA-256(name || "\n" ||
 *     0x01 || public key);
 *   - a note is its text (non-empty UTF-8 lines, each ending in "\n"), an
 *     empty line, then one or more signature lines "\u2014 <name>
 *     <base64(4-byte key hash || 64-byte Ed25519 signature over the text)>\n";
 *   - a checkpoint's text is "<origin>\n<tree size, decimal>\n<base64 of the
 *     32-byte root>\n" (extension lines after these are allowed and kept
 *     out of al_checkpoint_t).
 * Names are 1..127 bytes of printable ASCII without '+' or spaces.
 * Everything parsed here may come from a file an attacker wrote: bounded,
 * strict, never crashes. */
#ifndef AL_AUDIT_NOTE_H
#define AL_AUDIT_NOTE_H

#include "audit/merkle.h"
#include "util/common.h"
#include <stddef.h>
#include <stdint.h>

#define AL_NOTE_NAME_MAX 128
#define AL_NOTE_MAX 65536            /* bytes of a note we accept */

typedef struct al_signer {
    char name[AL_NOTE_NAME_MAX];
    uint8_t seed[32];
    uint8_t pub[32];
    uint32_t key_hash;
} al_signer_t;

typedef struct al_verifier {
    char name[AL_NOTE_NAME_MAX];
    uint8_t pub[32];
    uint32_t key_hash;
} al_verifier_t;

/* A fresh key pair: signer text into skey, verifier text into vkey
 * (NUL-terminated, no newline).  AL_EINVAL on a bad name, AL_ETOOBIG when a
 * buffer is short (256 bytes is always enough). */
int al_note_keygen(const char *name, char *skey, size_t sksz, char *vkey, size_t vksz);
/* Parse the texts (surrounding whitespace ignored).  AL_EPARSE. */
int al_note_signer_parse(const char *text, size_t len, al_signer_t *out /* OUT */);
int al_note_verifier_parse(const char *text, size_t len, al_verifier_t *out /* OUT */);
/* Read a signer key file (at most 4 KB); err names the path and problem. */
int al_note_signer_load(const char *path, al_signer_t *out /* OUT */, char *err, size_t errlen);
void al_note_verifier_of(const al_signer_t *s, al_verifier_t *out /* OUT */);
/* The verifier text, NUL-terminated.  AL_ETOOBIG when outsz is short. */
int al_note_verifier_format(const al_verifier_t *v, char *out, size_t outsz);

/* Sign text (which must end in "\n" and contain no empty line) into a full
 * note: text, "\n", one signature line. */
int al_note_sign(const al_signer_t *s, const char *text, size_t len, al_buf_t *out);
/* Check a note: 0 when it has a valid signature by v; then *text_len is the
 * length of its text (the bytes before the empty line).  AL_EPARSE when
 * malformed, AL_ENOTFOUND when no signature line is v's (name and key
 * hash), AL_EINVAL when v's signature does not verify. */
int al_note_open(const char *note, size_t len, const al_verifier_t *v, size_t *text_len /* OUT */);

typedef struct al_checkpoint {
    char origin[256];
    uint64_t size;
    uint8_t root[AL_HASH_LEN];
} al_checkpoint_t;

/* The signed checkpoint note for cp. */
int al_checkpoint_sign(const al_signer_t *s, const al_checkpoint_t *cp, al_buf_t *out);
/* Parse a checkpoint's text (the first three lines; no signature check). */
int al_checkpoint_parse(const char *text, size_t len, al_checkpoint_t *out /* OUT */);
/* al_note_open then al_checkpoint_parse: the codes of both. */
int al_checkpoint_open(const char *note, size_t len, const al_verifier_t *v,
                       al_checkpoint_t *out /* OUT */);

/* Standard base64 (with padding). encode returns the length written
 * (NUL-terminated) or 0 when outsz is short; decode -> 0 or AL_EPARSE. */
size_t al_b64_encode(const uint8_t *p, size_t len, char *out, size_t outsz);
int al_b64_decode(const char *p, size_t len, uint8_t *out, size_t outsz, size_t *outlen /* OUT */);

#endif
