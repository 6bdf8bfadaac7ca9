/* schema.h - JSON Schema (draft 2020-12 core keywords) for structured output.
 *
 * A schema is compiled once (from the agent's config at load, or from a
 * request's response_format per request) into a tree of checks, then
 * validates JSON documents: type, properties, required,
 * additionalProperties, items, prefixItems, enum, const, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, minLength, maxLength (in code points),
 * minItems, maxItems, pattern (Vectorscan, linear time), anyOf, oneOf,
 * allOf, not, $ref to "#" and "#/$defs/NAME".  Unknown keywords are
 * ignored, as the specification says.  Schemas and documents are hostile
 * input: depth, size and pattern counts are capped. */
#ifndef AL_GUARD_SCHEMA_H
#define AL_GUARD_SCHEMA_H

#include "util/common.h"

typedef struct al_schema al_schema_t;

/* Compile from JSON text.  AL_EINVAL with a message for a schema that is
 * not valid (bad keyword value, uncompilable pattern, too deep/large),
 * AL_EPARSE for text that is not JSON. */
int al_schema_compile(const char *json, size_t len, al_schema_t **out, char *err, size_t errlen);
void al_schema_free(al_schema_t *s);

/* Validate a JSON document.  AL_OK when valid; AL_EINVAL when not, err
 * naming the first failing location and keyword ("$.items[2].price:
 * minimum"); AL_EPARSE when the text is not JSON. */
int al_schema_validate(const al_schema_t *s, const char *json, size_t len, char *err,
                       size_t errlen);

#endif
