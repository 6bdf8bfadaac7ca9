/* leak.c - system prompt leakage by rolling hashes (see leak.h).  Text is
 * normalised one byte at a time (ASCII letters folded to lower case, a run
 * of ASCII whitespace becomes one space), so the normaliser's only state is
 * "the last byte was whitespace" and any split of a stream normalises the
 * same way.  The prompt, normalised, keeps every distinct min_span-character
 * window in an open-addressing set keyed by a polynomial hash modulo 2^64
 * (one multiply per byte) with a random odd base per instance; every hit is
 * confirmed byte by byte, so a collision costs a comparison, never a false
 * report.  The response is normalised into a ring of
 * the last min_span characters with the same rolling hash; a window whose
 * hash is in the set is confirmed byte by byte against the prompt before it
 * counts.  al_leak_find runs the same machine on a private ring, maps the
 * window back to raw byte offsets through a ring of raw positions, and
 * extends the run while the following windows are in the prompt too (first
 * by checking the next prompt byte, which is O(1), then by a new lookup);
 * whitespace at either end of the run is left out.  A min_span below 16 is
 * raised to 16 rather than refused. */
#include "guard/leak.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY SIZE_MAX
#define MIN_SPAN 16

typedef struct slot {
    uint64_t h;
    size_t pos;  /* window start in the normalised prompt, EMPTY when free */
} slot_t;

/* Normaliser plus rolling window over the last m normalised characters. */
typedef struct roll {
    unsigned char *ring;
    size_t count;    /* normalised characters so far */
    uint64_t h;
    bool space;      /* the previous byte was whitespace */
} roll_t;

struct al_leak {
    unsigned char *p;  /* normalised prompt */
    size_t np, m;
    uint64_t base, top;  /* top = base^(m-1) */
    slot_t *tab;
    size_t mask;
    roll_t r;
    bool leaked;
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The normalised form of byte c, or -1 when it is dropped (whitespace
 * after whitespace). */
static int norm(bool *space, unsigned char c)
{
    if (is_space(c)) {
        if (*space) return -1;
        *space = true;
        return ' ';
    }
    *space = false;
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static void roll_push(const al_leak_t *l, roll_t *r, unsigned char x)
{
    size_t at = r->count % l->m;
    uint64_t h = r->h;
    if (r->count >= l->m) h -= r->ring[at] * l->top;
    r->h = h * l->base + x;
    r->ring[at] = x;
    r->count++;
}

/* The ring's window (oldest at count % m) equals prompt bytes at pos. */
static bool ring_eq(const al_leak_t *l, const roll_t *r, size_t pos)
{
    size_t o = r->count % l->m;
    return memcmp(r->ring + o, l->p + pos, l->m - o) == 0 &&
           memcmp(r->ring, l->p + pos + (l->m - o), o) == 0;
}

/* The slot a hash starts probing at: the hash's low bits are poor (an odd
 * multiplier mod 2^64 keeps low bits of the input low), so mix first. */
static size_t slot_of(const al_leak_t *l, uint64_t h)
{
    h ^= h >> 31;
    h *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & l->mask;
}

/* Prompt position of the ring's window, or EMPTY. */
static size_t lookup(const al_leak_t *l, const roll_t *r)
{
    for (size_t i = slot_of(l, r->h);; i = (i + 1) & l->mask) {
        const slot_t *s = &l->tab[i];
        if (s->pos == EMPTY) return EMPTY;
        if (s->h == r->h && ring_eq(l, r, s->pos)) return s->pos;
    }
}

static bool build(al_leak_t *l)
{
    size_t nwin = l->np - l->m + 1, cap = 16;
    while (cap < nwin + nwin / 3 + 1) {
        if (cap > SIZE_MAX / 2 / sizeof(slot_t)) return false;
        cap *= 2;
    }
    l->tab = malloc(cap * sizeof(*l->tab));
    if (!l->tab) return false;
    for (size_t i = 0; i < cap; i++) l->tab[i].pos = EMPTY;
    l->mask = cap - 1;
    uint64_t h = 0;
    for (size_t i = 0; i < l->np; i++) {
        if (i >= l->m) h -= l->p[i - l->m] * l->top;
        h = h * l->base + l->p[i];
        if (i + 1 < l->m) continue;
        /* One entry per distinct hash: a repeated window is stored once, so
         * probing stays short however repetitive the prompt is (two different
         * windows of the operator's own prompt sharing a hash is rare and
         * costs only that window). */
        size_t j = slot_of(l, h);
        while (l->tab[j].pos != EMPTY && l->tab[j].h != h) j = (j + 1) & l->mask;
        if (l->tab[j].pos == EMPTY) {
            l->tab[j].h = h;
            l->tab[j].pos = i + 1 - l->m;
        }
    }
    return true;
}

al_leak_t *al_leak_new(const char *prompt, size_t len, size_t min_span)
{
    if (!prompt) return NULL;
    if (min_span < MIN_SPAN) min_span = MIN_SPAN;
    if (len < min_span) return NULL;
    al_leak_t *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->m = min_span;
    if (!(l->p = malloc(len)) || !(l->r.ring = malloc(l->m))) goto fail;
    bool space = false;
    for (size_t i = 0; i < len; i++) {
        int x = norm(&space, (unsigned char)prompt[i]);
        if (x >= 0) l->p[l->np++] = (unsigned char)x;
    }
    if (l->np < l->m) goto fail;
    uint64_t b;
    al_fast_random(&b, sizeof(b));
    l->base = b | 0x101;   /* odd, and never a tiny multiplier */
    l->top = 1;
    for (size_t i = 1; i < l->m; i++) l->top *= l->base;
    if (!build(l)) goto fail;
    return l;
fail:
    al_leak_free(l);
    return NULL;
}

al_leak_t *al_leak_clone(const al_leak_t *l)
{
    if (!l) return NULL;
    al_leak_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    *c = *l;
    c->r = (roll_t){0};
    c->leaked = false;
    c->p = malloc(l->np);
    c->r.ring = malloc(l->m);
    c->tab = malloc((l->mask + 1) * sizeof(*l->tab));
    if (!c->p || !c->r.ring || !c->tab) {
        al_leak_free(c);
        return NULL;
    }
    memcpy(c->p, l->p, l->np);
    memcpy(c->tab, l->tab, (l->mask + 1) * sizeof(*l->tab));
    return c;
}

void al_leak_free(al_leak_t *l)
{
    if (!l) return;
    free(l->p);
    free(l->r.ring);
    free(l->tab);
    free(l);
}

bool al_leak_feed(al_leak_t *l, const char *text, size_t len)
{
    if (!l) return false;
    if (l->leaked) return true;
    for (size_t i = 0; i < len; i++) {
        int x = norm(&l->r.space, (unsigned char)text[i]);
        if (x < 0) continue;
        roll_push(l, &l->r, (unsigned char)x);
        if (l->r.count >= l->m && lookup(l, &l->r) != EMPTY) {
            l->leaked = true;
            break;
        }
    }
    return l->leaked;
}

bool al_leak_find(const al_leak_t *l, const char *text, size_t len, size_t *s, size_t *e)
{
    if (!l || !text) return false;
    roll_t r = {0};
    size_t *raw = malloc(l->m * sizeof(*raw));  /* raw offset of ring chars */
    r.ring = malloc(l->m);
    bool found = false, in_run = false;
    size_t k = 0, start = 0, end = len;
    if (!raw || !r.ring) goto out;
    for (size_t i = 0; i < len; i++) {
        int x = norm(&r.space, (unsigned char)text[i]);
        if (x < 0) continue;
        raw[r.count % l->m] = i;
        roll_push(l, &r, (unsigned char)x);
        if (r.count < l->m) continue;
        if (in_run && k + l->m < l->np && l->p[k + l->m] == (unsigned char)x) {
            k++; /* the previous window matched at k: this one does at k+1 */
            continue;
        }
        size_t pos = lookup(l, &r);
        if (pos != EMPTY) {
            if (!in_run) start = raw[r.count % l->m]; /* the window's first char */
            in_run = true;
            k = pos;
        } else if (in_run) {
            end = i; /* the run stops before the character that broke it */
            break;
        }
    }
    if (in_run) {
        /* Boundary whitespace is not part of what leaked. */
        while (start < end && is_space((unsigned char)text[start])) start++;
        while (end > start && is_space((unsigned char)text[end - 1])) end--;
        found = true;
        if (s) *s = start;
        if (e) *e = end;
    }
out:
    free(raw);
    free(r.ring);
    return found;
}
