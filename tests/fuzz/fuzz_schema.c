/* fuzz_schema.c - libFuzzer target for guard/schema.c.  The input is a
 * schema and a document: split at the first NUL byte, or in halves when
 * there is none.  The schema is compiled; when it compiles, the document is
 * validated, and validated again to check the answer is the same both
 * times (a compiled schema is immutable).  Every answer must be one of the
 * documented codes, and an error message must start with "$" and be
 * NUL-terminated inside its buffer.  Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/schema.h"

static void check(bool ok)
{
    if (!ok) abort();
}

static void check_msg(const char *err, size_t errlen)
{
    check(memchr(err, '\0', errlen) != NULL);
    check(err[0] == '$' || err[0] == 's' || err[0] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nul = memchr(p, '\0', size);
    size_t slen = nul ? (size_t)(nul - p) : size / 2;
    const char *doc = nul ? nul + 1 : p + slen;
    size_t dlen = size - (size_t)(doc - p);

    char err[128];
    al_schema_t *s = (al_schema_t *)1;
    int rc = al_schema_compile(p, slen, &s, err, sizeof(err));
    check(rc == AL_OK || rc == AL_EINVAL || rc == AL_EPARSE);
    check_msg(err, sizeof(err));
    if (rc != AL_OK) {
        check(s == NULL);
        return 0;
    }
    char err2[128];
    int v1 = al_schema_validate(s, doc, dlen, err, sizeof(err));
    check(v1 == AL_OK || v1 == AL_EINVAL || v1 == AL_EPARSE);
    check_msg(err, sizeof(err));
    check(v1 != AL_OK || err[0] == '\0');
    int v2 = al_schema_validate(s, doc, dlen, err2, sizeof(err2));
    check(v1 == v2 && strcmp(err, err2) == 0);
    /* A tiny error buffer is still terminated. */
    char tiny[3];
    al_schema_validate(s, doc, dlen, tiny, sizeof(tiny));
    check(memchr(tiny, '\0', sizeof(tiny)) != NULL);
    al_schema_free(s);
    return 0;
}
