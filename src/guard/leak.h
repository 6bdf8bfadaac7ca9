/* leak.h - system prompt leakage: does a response reproduce a long verbatim
 * span of the request's system prompt?
 *
 * Both texts are normalised (ASCII case folded, every run of whitespace one
 * space) and compared by rolling hashes of min_span-character windows: a
 * set of the prompt's window hashes, probed by the response's windows and
 * confirmed byte by byte.  Fed incrementally, so it works on streams. */
#ifndef AL_GUARD_LEAK_H
#define AL_GUARD_LEAK_H

#include "util/common.h"

typedef struct al_leak al_leak_t;

/* NULL when the prompt is shorter than min_span (nothing can leak) or out
 * of memory.  min_span >= 16. */
al_leak_t *al_leak_new(const char *prompt, size_t len, size_t min_span);
void al_leak_free(al_leak_t *l);
/* A copy with its own (fresh) feed state, sharing nothing: building is
 * the costly part, so a caller may keep built ones and hand out copies.
 * NULL on out of memory. */
al_leak_t *al_leak_clone(const al_leak_t *l);
/* Feed response text (any split).  True once a leaked span has been seen
 * (and from then on). */
bool al_leak_feed(al_leak_t *l, const char *text, size_t len);
/* One whole text: the first leaked span as raw byte offsets [*s, *e) of
 * text (extended to the whole verbatim run), or false.  Independent of
 * al_leak_feed's state. */
bool al_leak_find(const al_leak_t *l, const char *text, size_t len, size_t *s, size_t *e);

#endif
