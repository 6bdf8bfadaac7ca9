/* fuzz_audit_proof.c - libFuzzer target for the auditor's offline inputs.
 *
 * Proof documents (`airlock audit verify-proof` / `verify-consistency`) and
 * witness files (`airlock audit verify --checkpoint FILE`) come from
 * wherever an auditor got them: hostile.  Each input is checked as an
 * inclusion proof and as a consistency proof against a fixed verifier key
 * (the key that signed the seed corpus, so the seeds verify and mutations
 * of them exercise every check), split into notes as a witness file, each
 * note opened as a checkpoint, and read as a key text (a parsed verifier
 * key must format back to itself).  Nothing may crash, and an accepted
 * inclusion proof must name a record inside the signed tree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/verify.h"

static const char vkey[] = "fuzz.airlock+496f867a+AXK6LtwAlP8FI/b+5oJ7vVPj+rfrLM3MZzwlthaDfjCT";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static al_verifier_t v;
    static int ready;
    char err[256];
    if (!ready) {
        if (al_note_verifier_parse(vkey, strlen(vkey), &v) != AL_OK) abort();
        ready = 1;
    }
    const char *p = (const char *)data;
    al_audit_proof_result_t res;
    memset(&res, 0, sizeof res);
    if (al_audit_proof_verify(p, size, &v, 1, &res, err, sizeof err) == AL_OK) {
        if (res.seq == 0 || res.seq > res.size) abort();
    }
    memset(&res, 0, sizeof res);
    if (al_audit_consistency_verify(p, size, &v, 1, &res, err, sizeof err) == AL_OK) {
        if (res.old_size == 0 || res.old_size > res.size) abort();
    }
    /* A key text (the CLI's --key, a key file). */
    al_verifier_t kv;
    al_signer_t ks;
    if (al_note_verifier_parse(p, size, &kv) == AL_OK) {
        char back[300];
        if (al_note_verifier_format(&kv, back, sizeof back) != AL_OK) abort();
        al_verifier_t again;
        if (al_note_verifier_parse(back, strlen(back), &again) != AL_OK ||
            memcmp(again.pub, kv.pub, 32) != 0 || again.key_hash != kv.key_hash)
            abort();
    }
    (void)al_note_signer_parse(p, size, &ks);
    al_checkpoint_t one;
    (void)al_checkpoint_parse(p, size, &one);
    size_t off = 0, start, nlen, n = 0;
    while (n++ < 1000 && al_audit_note_next(p, size, &off, &start, &nlen)) {
        if (start > size || nlen > size - start) abort();
        al_checkpoint_t cp;
        (void)al_checkpoint_open(p + start, nlen, &v, &cp);
    }
    return 0;
}
