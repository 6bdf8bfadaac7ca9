/* pii.h - the built-in PII and secret entities: candidate patterns for the
 * scanning engine and the validators that confirm a candidate.
 *
 * Each pattern is a Vectorscan expression that finds candidates cheaply;
 * al_pii_confirm then finds the candidate's exact span around the reported
 * match and validates it (Luhn for cards, mod-97 for IBANs, the SSA's rules
 * for SSNs, address syntax for IPs, digit counts per national plan for
 * phones, structure for secrets).  Hard negatives (order numbers, UUIDs,
 * timestamps, versions, prices, numbers in code) are rejected here. */
#ifndef AL_GUARD_PII_H
#define AL_GUARD_PII_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum al_entity {
    AL_ENT_EMAIL = 0,
    AL_ENT_PHONE,
    AL_ENT_CREDIT_CARD,
    AL_ENT_IBAN,
    AL_ENT_US_SSN,
    AL_ENT_IP_ADDRESS,
    AL_ENT_SECRET,
    AL_ENT_CUSTOM          /* first custom entity id */
} al_entity_t;

typedef enum al_validator {
    AL_VAL_NONE = 0,
    AL_VAL_LUHN,           /* the digits pass the Luhn check */
    AL_VAL_MOD97,          /* ISO 7064 mod 97-10 over the alphanumerics, as IBAN */
} al_validator_t;

/* A pattern for the engine.  flags: Vectorscan HS_FLAG_* bits. */
typedef struct al_pat {
    const char *expr;
    unsigned flags;
} al_pat_t;

/* The built-in candidate patterns; pattern i is reported to al_pii_confirm
 * with id i.  Returns the count. */
size_t al_pii_patterns(const al_pat_t **out);

/* A candidate: pattern id matched text[from, to) (from is the leftmost start
 * when the pattern has HS_FLAG_SOM_LEFTMOST, else 0).  Finds the entity's
 * exact span, validates it, and returns the entity (*s, *e set) or -1.  The
 * same span may be confirmed more than once; the engine dedups. */
int al_pii_confirm(unsigned id, const char *text, size_t len, size_t from, size_t to, size_t *s,
                   size_t *e);

/* "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET". */
const char *al_pii_entity_name(unsigned ent);
/* Built-in entity by name (case-sensitive), -1 if none. */
int al_pii_entity_lookup(const char *name, size_t len);

/* Validators, also used for custom entities: digits/alphanumerics are
 * taken from p[0, len), separators (space, '-', '.') skipped. */
bool al_pii_luhn(const char *p, size_t len);
bool al_pii_mod97(const char *p, size_t len);
bool al_pii_validate(al_validator_t v, const char *p, size_t len);
/* "luhn", "mod97", "none" -> validator; false when unknown. */
bool al_pii_validator_lookup(const char *name, size_t len, al_validator_t *out);

#endif
