/* json.h - small helpers over YAJL trees shared by the translators
 * (translate/messages.c, translate/anthropic.c), the mock server and
 * `airlock status`: member lookup, re-serialization and a nesting-depth scan
 * to run over untrusted text before yajl_tree_parse (which builds, and
 * yajl_tree_free recurses over, any depth). */
#ifndef AL_JSON_H
#define AL_JSON_H

#include "util/common.h"
#include <stddef.h>
#include <yajl/yajl_tree.h>

/* Member key of object obj, the last one when the key repeats; NULL when obj
 * is not an object or has no such member.  Borrowed from the tree. */
yajl_val al_json_get(yajl_val obj, const char *key);

/* Append v as compact JSON to b (NULL as null); numbers keep their text.
 * Recursive: the caller bounds the depth (al_json_depth) before parsing. */
void al_json_put(al_buf_t *b, yajl_val v);

/* The deepest nesting of [ and { in p/len outside strings (a backslash in a
 * string skips the next byte; a close bracket at depth 0 is ignored). */
size_t al_json_depth(const char *p, size_t len);

#endif
