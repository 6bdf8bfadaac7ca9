/* engine.h - the guardrails' scanning engine: one Vectorscan database per
 * policy, one pass over a text for every detector.
 *
 * A scanner is compiled at config load from the built-in PII candidate
 * patterns (pii.h), the policy's custom entities and, when asked, the
 * prompt-injection feature patterns (inject.h).  al_scanner_scan runs the
 * database once over a text; each candidate is handed to its detector's
 * confirm step (validators run only on candidates), and the result is the
 * validated, non-overlapping PII findings sorted by start plus the
 * injection state.  A scanner is immutable after build and shared by every
 * thread; each thread scans with its own scratch, cloned lazily from the
 * scanner's prototype (al_scanner_scan handles that). */
#ifndef AL_GUARD_ENGINE_H
#define AL_GUARD_ENGINE_H

#include "guard/inject.h"
#include "guard/pii.h"
#include "util/common.h"

/* One validated entity in a text. */
typedef struct al_find {
    uint32_t start, end;   /* byte offsets [start, end) in the scanned text */
    uint16_t entity;       /* AL_ENT_* or AL_ENT_CUSTOM + index of the custom entity */
} al_find_t;

/* A custom entity from the config: name (upper case, [A-Z0-9_], <= 31
 * chars, not a built-in name), a regex in Vectorscan/PCRE syntax and an
 * optional validator. */
typedef struct al_custom_entity {
    char name[32];
    char *regex;            /* owned by the config */
    al_validator_t validator;
} al_custom_entity_t;

#define AL_SCAN_MAX_FINDS 1024  /* findings kept per text; later ones are counted only */

typedef struct al_scanner al_scanner_t;

/* Compile.  n_custom <= 64.  with_inject adds the injection features.
 * On error returns AL_EINVAL with a message naming the bad custom regex. */
int al_scanner_build(const al_custom_entity_t *custom, size_t n_custom, bool with_inject,
                     al_scanner_t **out, char *err, size_t errlen);
void al_scanner_free(al_scanner_t *s);
/* Name of an entity id (built-in or custom of this scanner). */
const char *al_scanner_entity_name(const al_scanner_t *s, unsigned entity);
size_t al_scanner_n_entities(const al_scanner_t *s);  /* AL_ENT_CUSTOM + n_custom */

typedef struct al_scan_result {
    al_find_t finds[AL_SCAN_MAX_FINDS];
    size_t n_finds;          /* kept, sorted by start, non-overlapping */
    size_t n_dropped;        /* validated but not kept (over the cap) */
    al_inject_state_t inj;   /* valid when AL_SCAN_INJECT was asked */
} al_scan_result_t;

enum { AL_SCAN_PII = 1, AL_SCAN_INJECT = 2 };

/* Scan one text (any bytes; not necessarily NUL-terminated, len < 4 GiB).
 * what: AL_SCAN_PII and/or AL_SCAN_INJECT.  r is reset first.  Returns
 * AL_OK, AL_ENOMEM (no scratch) or AL_EIO (Vectorscan failed). */
int al_scanner_scan(const al_scanner_t *s, const char *text, size_t len, unsigned what,
                    al_scan_result_t *r);

#endif
