/* fuzz_canon.c - libFuzzer target for util/canon.c.  The input is
 * canonicalized into a capped buffer.  The answer must be one of the
 * documented codes; on success the output must be canonical
 * (al_json_is_canon), a fixed point (canon(output) == output), no longer
 * than the input, and valid JSON to an independent parser (yajl_tree).
 * al_json_is_canon of the input must agree with "canon succeeded and gave
 * the input back".  Where no string holds U+0000, yajl's decoded keys of
 * each object must be strictly increasing (an order check that does not
 * share canon.c's comparison).  A second run with a cap one byte short of the output
 * must report AL_ETOOBIG.  Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "util/canon.h"

static void check(bool ok)
{
    if (!ok) abort();
}

/* An independent look at the order: yajl's decoded keys of every object
 * must be strictly increasing byte-wise (strcmp compares unsigned bytes;
 * objects whose keys hold a NUL, which yajl's C strings cut, are skipped). */
static bool has_nul_key(const char *out, size_t len)
{
    return memmem(out, len, "\\u0000", 6) != NULL;
}

static void check_sorted(yajl_val v, int depth)
{
    check(depth <= AL_CANON_MAX_DEPTH + 1);
    if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i) check(strcmp(v->u.object.keys[i - 1], v->u.object.keys[i]) < 0);
            check_sorted(v->u.object.values[i], depth + 1);
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++) check_sorted(v->u.array.values[i], depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    al_buf_t out, again;
    al_buf_init(&out, 1u << 22);
    al_buf_init(&again, 1u << 22);
    int rc = al_json_canon(in, size, &out);
    check(rc == AL_OK || rc == AL_EPARSE);
    bool same = rc == AL_OK && out.len == size && memcmp(out.p, in, size) == 0;
    check(al_json_is_canon(in, size) == same);
    if (rc != AL_OK) {
        check(out.len == 0);
        goto done;
    }
    check(out.len <= size);
    check(out.p[out.len] == '\0');
    check(al_json_is_canon(out.p, out.len));
    check(al_json_canon(out.p, out.len, &again) == AL_OK);
    check(again.len == out.len && memcmp(again.p, out.p, out.len) == 0);
    /* yajl needs a NUL-terminated text without embedded NULs; canonical
     * output never holds a raw NUL (it is escaped). */
    check(memchr(out.p, '\0', out.len) == NULL);
    char errbuf[128];
    yajl_val v = yajl_tree_parse(out.p, errbuf, sizeof errbuf);
    check(v != NULL);
    if (!has_nul_key(out.p, out.len)) check_sorted(v, 0);
    yajl_tree_free(v);
    if (out.len > 0) {
        al_buf_t tiny;
        al_buf_init(&tiny, out.len - 1);
        check(al_json_canon(in, size, &tiny) == AL_ETOOBIG);
        al_buf_free(&tiny);
    }
done:
    al_buf_free(&out);
    al_buf_free(&again);
    return 0;
}
