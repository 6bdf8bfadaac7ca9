/* inject.h - the prompt-injection and jailbreak detector: feature patterns
 * scanned by the engine in the same pass as PII, then a score.
 *
 * Families: instruction override ("ignore previous instructions" and its
 * paraphrases, English, German, French, Spanish), role-play / "developer
 * mode" jailbreak markers, system prompt extraction, delimiter and fake-role
 * injection (chat-template tokens, "system:" inside user text), encoded
 * payloads (base64 blobs that decode to such text, Unicode tag characters,
 * zero-width and bidi controls), excessive special tokens and repetition.
 * Each pattern hit adds evidence to its family; al_inject_end adds the
 * non-regex features and turns the evidence into a score in [0, 1]. */
#ifndef AL_GUARD_INJECT_H
#define AL_GUARD_INJECT_H

#include "guard/pii.h"

typedef enum al_inj_family {
    AL_INJ_OVERRIDE = 0,     /* "ignore previous instructions", paraphrases, 4 languages */
    AL_INJ_JAILBREAK,        /* role-play, DAN, developer mode, "no restrictions" */
    AL_INJ_EXTRACTION,       /* reveal / repeat the system prompt */
    AL_INJ_FAKE_ROLE,        /* "system:" lines in user text, chat-template tokens, delimiters */
    AL_INJ_ENCODED,          /* base64 that decodes to an injection */
    AL_INJ_INVISIBLE,        /* Unicode tag characters, zero-width, bidi controls */
    AL_INJ_REPETITION,       /* excessive special tokens or repeated runs */
    AL_INJ_NFAM
} al_inj_family_t;

typedef struct al_inject_state {
    double score;                   /* [0, 1], valid after al_inject_end */
    uint32_t families;              /* bit f set: family f fired */
    uint16_t hits[AL_INJ_NFAM];     /* evidence per family */
    double weight[AL_INJ_NFAM];     /* strongest evidence per family */
    uint32_t depth;                 /* decode nesting (internal) */
} al_inject_state_t;

/* The feature patterns; pattern i is reported to al_inject_on_match with
 * id i.  Returns the count. */
size_t al_inject_patterns(const al_pat_t **out);

void al_inject_begin(al_inject_state_t *st);
/* A feature pattern matched text[from, to). */
void al_inject_on_match(al_inject_state_t *st, unsigned id, const char *text, size_t len,
                        size_t from, size_t to);

/* Scan a decoded payload with the feature patterns again (the engine
 * provides it); hits land in st. */
typedef void (*al_inject_rescan_fn)(void *ud, al_inject_state_t *st, const char *text,
                                    size_t len);
/* After the scan: the non-regex features (invisible characters, base64
 * blobs decoded and rescanned through rescan, repetition), then the score. */
void al_inject_end(al_inject_state_t *st, const char *text, size_t len, al_inject_rescan_fn rescan,
                   void *ud);

/* "override", "jailbreak", "extraction", "fake_role", "encoded",
 * "invisible", "repetition". */
const char *al_inject_family_name(unsigned fam);

#define AL_INJECT_DEFAULT_THRESHOLD 0.5

#endif
