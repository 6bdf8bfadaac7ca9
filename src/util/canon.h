/* canon.h - canonical JSON.
 *
 * The audit chain hashes records as bytes, so a record must have exactly
 * one spelling: object members sorted by key (byte-wise on the UTF-8 of the
 * unescaped key; a duplicate key is an error), no whitespace outside
 * strings, strings re-escaped minimally (only '"', '\\' and control
 * characters: \b \f \n \r \t by their short forms, others as \u00XX
 * lower-case; everything else, '/' and non-ASCII included, as raw UTF-8;
 * \uXXXX escapes in the input are decoded, surrogate pairs joined, lone
 * surrogates and invalid UTF-8 refused), numbers as written (their token is
 * checked against the JSON grammar and copied), true/false/null.  Depth is
 * capped at 64 and input at the caller's buffer cap. */
#ifndef AL_UTIL_CANON_H
#define AL_UTIL_CANON_H

#include "util/common.h"
#include <stddef.h>

#define AL_CANON_MAX_DEPTH 64

/* Append the canonical form of the JSON text in[0..len) to out.  0, or
 * AL_EPARSE (not JSON, a duplicate key, bad UTF-8, too deep) / AL_ETOOBIG
 * (out's cap) / AL_ENOMEM; out may hold partial output on error. */
int al_json_canon(const char *in, size_t len, al_buf_t *out);
/* True when in is already canonical (al_json_canon would return it as is). */
bool al_json_is_canon(const char *in, size_t len);

#endif
