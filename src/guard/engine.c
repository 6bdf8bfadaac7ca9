/* engine.c - the guardrails' scanning engine.  A scanner holds up to three
 * Vectorscan block-mode databases with distinct id ranges: the built-in PII
 * candidate patterns (ids from PII_BASE; the digit-run pattern excepted,
 * which this file matches itself 64 bytes at a time with SSE2 masks, see
 * scan_digits, because a class-led pattern halves Vectorscan's speed on
 * prose with ordinary numbers) with the policy's custom entities
 * (ids from CUSTOM_BASE, compiled with HS_FLAG_SOM_LEFTMOST so their span is
 * known), and, when asked, the injection feature patterns (ids from
 * INJ_BASE), and, with the injection features, the union of the two, which
 * a scan asking for both detectors runs in one pass; the PII one alone
 * serves PII-only scans (the output direction) and the injection one alone
 * the rescans of decoded payloads.  The match callback hands PII candidates to
 * al_pii_confirm, checks custom matches against word boundaries and their
 * validator, and routes injection hits to al_inject_on_match.  The digit
 * runs' candidates come first, Vectorscan's after them, and the two lists
 * are merged by start.  Confirmed
 * spans are then sorted, overlaps resolved (longer span first, then the
 * earlier pattern) and capped at AL_SCAN_MAX_FINDS.  The scanner is
 * immutable and shared: it keeps a prototype scratch valid for all its
 * databases, and each thread clones its own scratch from it the first time
 * it scans with a scanner; the thread's cache is keyed by a global
 * generation number, never by address, because a freed scanner's address
 * can come back for a new one.  The candidate array is per thread too and
 * reused from scan to scan. */
#include "guard/engine.h"

#include <hs.h>
#include <pthread.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PII_BASE 0u
#define CUSTOM_BASE 100000u
#define INJ_BASE 200000u
#define MAX_CUSTOM 64
#define MAX_RESCAN_DEPTH 2
#define MAX_PII_IDS 32       /* patterns tracked for the re-report skip; see LEAD_SLOT */
/* Candidates kept per thread between scans; a bigger array is freed after
 * the scan so one huge text does not pin memory forever. */
#define CAND_KEEP 4096
/* A built-in pattern with this bit in its flags is not compiled: it stands
 * for the digit runs that the engine finds itself (see scan_digits).  The
 * same value is defined in pii.c, which marks its numeric pattern with it;
 * no Vectorscan flag uses the bit. */
#define AL_PAT_DIGIT_RUN (1u << 30)

struct al_scanner {
    hs_database_t *db;       /* PII + custom entities */
    hs_database_t *db_inj;   /* injection features; NULL without them */
    hs_database_t *db_all;   /* PII + custom + injection in one; NULL without them */
    hs_scratch_t *proto;     /* prototype valid for all three; cloned per thread */
    uint64_t gen;            /* unique for the life of the process */
    size_t n_pii, n_inj;
    int num_id;              /* the built-in digit-run pattern (found here, not by
                              * Vectorscan), -1 if none */
    size_t n_custom;
    struct {
        char name[32];
        al_validator_t validator;
    } custom[MAX_CUSTOM];
};

/* A confirmed span before dedup. */
typedef struct cand {
    uint32_t start, end;
    uint16_t entity;
    uint32_t pat;            /* database id, the tie-breaker */
} cand_t;

typedef struct tls_state {
    uint64_t gen;            /* generation of the scanner scratch belongs to */
    hs_scratch_t *scratch;
    bool busy;               /* scratch in use (a rescan from inside a scan) */
    cand_t *cand;
    size_t cand_cap;
    cand_t *tmp;             /* merge buffer */
    size_t tmp_cap;
} tls_state_t;

static _Atomic uint64_t g_gen = 1;
static __thread tls_state_t t_st;
static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

/* Frees a thread's scratch and candidate array when the thread exits. */
static void tls_destroy(void *p)
{
    tls_state_t *st = p;
    if (st->scratch) hs_free_scratch(st->scratch);
    st->scratch = NULL;
    free(st->cand);
    st->cand = NULL;
    st->cand_cap = 0;
    free(st->tmp);
    st->tmp = NULL;
    st->tmp_cap = 0;
    st->gen = 0;
}

static bool g_key_ok;

static void key_init(void)
{
    g_key_ok = pthread_key_create(&g_key, tls_destroy) == 0;
}

/* The thread's scratch for s, cloned from the prototype when the cached one
 * belongs to another scanner.  NULL on failure. */
static hs_scratch_t *thread_scratch(const al_scanner_t *s)
{
    tls_state_t *st = &t_st;
    if (st->scratch && st->gen == s->gen) return st->scratch;
    pthread_once(&g_key_once, key_init);
    hs_scratch_t *fresh = NULL;
    if (hs_clone_scratch(s->proto, &fresh) != HS_SUCCESS) return NULL;
    if (st->scratch) hs_free_scratch(st->scratch);
    st->scratch = fresh;
    st->gen = s->gen;
    /* Registers the exit-time cleanup; without a key the scratch leaks at
     * thread exit, which only costs memory. */
    if (g_key_ok) pthread_setspecific(g_key, st);
    return fresh;
}

/* --- build ------------------------------------------------------------- */

int al_scanner_build(const al_custom_entity_t *custom, size_t n_custom, bool with_inject,
                     al_scanner_t **out, char *err, size_t errlen)
{
    int rc = AL_OK;
    const char **exprs = NULL;
    unsigned *flags = NULL, *ids = NULL;
    hs_compile_error_t *cerr = NULL;
    al_scanner_t *s = NULL;

    if (err && errlen) err[0] = '\0';
    *out = NULL;
    if (n_custom > MAX_CUSTOM || (n_custom && !custom)) {
        if (err) snprintf(err, errlen, "too many custom entities (max %d)", MAX_CUSTOM);
        return AL_EINVAL;
    }
    const al_pat_t *pii = NULL, *inj = NULL;
    size_t n_pii = al_pii_patterns(&pii);
    size_t n_inj = with_inject ? al_inject_patterns(&inj) : 0;
    size_t n = n_pii + n_custom + n_inj;

    s = al_calloc(1, sizeof(*s));
    s->n_pii = n_pii;
    s->n_inj = n_inj;
    s->n_custom = n_custom;
    for (size_t i = 0; i < n_custom; i++) {
        const al_custom_entity_t *c = &custom[i];
        size_t nl = strnlen(c->name, sizeof(c->name));
        bool name_ok = nl > 0 && nl < sizeof(c->name);
        for (size_t j = 0; name_ok && j < nl; j++) {
            char ch = c->name[j];
            name_ok = (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
        }
        if (!name_ok || al_pii_entity_lookup(c->name, nl) >= 0) {
            if (err)
                snprintf(err, errlen, "custom entity %zu: bad name '%.*s' (A-Z, 0-9, _; "
                         "at most 31; not a built-in)", i, (int)nl, c->name);
            rc = AL_EINVAL;
            goto out;
        }
        if (!c->regex || !c->regex[0]) {
            if (err) snprintf(err, errlen, "entity '%.31s': empty regex", c->name);
            rc = AL_EINVAL;
            goto out;
        }
        memcpy(s->custom[i].name, c->name, sizeof(c->name));
        s->custom[i].name[sizeof(s->custom[i].name) - 1] = '\0';
        s->custom[i].validator = c->validator;
    }

    exprs = al_calloc(n ? n : 1, sizeof(*exprs));
    flags = al_calloc(n ? n : 1, sizeof(*flags));
    ids = al_calloc(n ? n : 1, sizeof(*ids));
    size_t k = 0;
    s->num_id = -1;
    for (size_t i = 0; i < n_pii; i++) {
        /* (Built-in ids from LEAD_SLOT up are simply not tracked for the
         * re-report skip.) */
        if (pii[i].flags & AL_PAT_DIGIT_RUN) {
            s->num_id = (int)i;
            continue;
        }
        exprs[k] = pii[i].expr;
        flags[k] = pii[i].flags;
        ids[k] = PII_BASE + (unsigned)i;
        k++;
    }
    size_t n_vs_pii = k;   /* built-in patterns Vectorscan runs */
    for (size_t i = 0; i < n_custom; i++, k++) {
        exprs[k] = custom[i].regex;
        flags[k] = HS_FLAG_SOM_LEFTMOST;
        ids[k] = CUSTOM_BASE + (unsigned)i;
    }
    for (size_t i = 0; i < n_inj; i++, k++) {
        exprs[k] = inj[i].expr;
        flags[k] = inj[i].flags;
        ids[k] = INJ_BASE + (unsigned)i;
    }

    /* One database per detector family, with distinct id ranges.  The
     * injection set is large and slow next to the PII one, so keeping it
     * apart lets a PII-only scan (output direction, redaction) skip it and
     * the decoded payload rescans run it alone; the combined one below does
     * a scan for both in one pass.  Custom regexes live with PII, so a bad
     * one is reported by its entity name. */
    size_t n_first = n_vs_pii + n_custom;
    if (hs_compile_multi(exprs, flags, ids, (unsigned)n_first, HS_MODE_BLOCK, NULL, &s->db,
                         &cerr) != HS_SUCCESS) {
        int at = cerr ? cerr->expression : -1;
        const char *msg = cerr && cerr->message ? cerr->message : "compile failed";
        if (err) {
            if (at >= 0 && (size_t)at >= n_vs_pii)
                snprintf(err, errlen, "entity '%s': bad regex: %s",
                         s->custom[(size_t)at - n_vs_pii].name, msg);
            else if (at >= 0)
                snprintf(err, errlen, "built-in PII pattern %u: %s", ids[at] - PII_BASE, msg);
            else
                snprintf(err, errlen, "scanner: %s", msg);
        }
        rc = AL_EINVAL;
        goto out;
    }
    if (n_inj && hs_compile_multi(exprs + n_first, flags + n_first, ids + n_first,
                                  (unsigned)n_inj, HS_MODE_BLOCK, NULL, &s->db_inj,
                                  &cerr) != HS_SUCCESS) {
        int at = cerr ? cerr->expression : -1;
        if (err)
            snprintf(err, errlen, "injection pattern %d: %s", at,
                     cerr && cerr->message ? cerr->message : "compile failed");
        rc = AL_EINVAL;
        goto out;
    }
    /* The combined database serves the scans asking for both detectors (the
     * input direction): one pass over the text instead of two.  Its
     * expressions already compiled above, so an error here is the engine's. */
    if (n_inj && hs_compile_multi(exprs, flags, ids, (unsigned)(n_first + n_inj), HS_MODE_BLOCK,
                                  NULL, &s->db_all, &cerr) != HS_SUCCESS) {
        if (err)
            snprintf(err, errlen, "scanner (combined): %s",
                     cerr && cerr->message ? cerr->message : "compile failed");
        rc = AL_EINVAL;
        goto out;
    }
    /* One prototype scratch, grown to fit every database. */
    if (hs_alloc_scratch(s->db, &s->proto) != HS_SUCCESS ||
        (s->db_inj && hs_alloc_scratch(s->db_inj, &s->proto) != HS_SUCCESS) ||
        (s->db_all && hs_alloc_scratch(s->db_all, &s->proto) != HS_SUCCESS)) {
        if (err) snprintf(err, errlen, "scanner: cannot allocate scratch");
        rc = AL_ENOMEM;
        goto out;
    }
    s->gen = atomic_fetch_add(&g_gen, 1);
    *out = s;
    s = NULL;
out:
    if (cerr) hs_free_compile_error(cerr);
    free(exprs);
    free(flags);
    free(ids);
    al_scanner_free(s);
    return rc;
}

void al_scanner_free(al_scanner_t *s)
{
    if (!s) return;
    if (s->proto) hs_free_scratch(s->proto);
    if (s->db) hs_free_database(s->db);
    if (s->db_inj) hs_free_database(s->db_inj);
    if (s->db_all) hs_free_database(s->db_all);
    free(s);
}

const char *al_scanner_entity_name(const al_scanner_t *s, unsigned entity)
{
    if (entity < AL_ENT_CUSTOM) return al_pii_entity_name(entity);
    if (!s || entity - AL_ENT_CUSTOM >= s->n_custom) return NULL;
    return s->custom[entity - AL_ENT_CUSTOM].name;
}

size_t al_scanner_n_entities(const al_scanner_t *s)
{
    return AL_ENT_CUSTOM + (s ? s->n_custom : 0);
}

/* --- scan -------------------------------------------------------------- */

typedef struct scan_ctx {
    const al_scanner_t *s;
    const char *text;
    size_t len;
    unsigned what;
    al_scan_result_t *r;
    tls_state_t *tls;
    size_t n_cand;
    size_t dpos;             /* the digit-run scan has covered text[0, dpos) */
    bool oom;
    /* The digit-run confirm's floor (see pii.c, confirm_num): every start
     * before num_floor was tried for an earlier report of this scan and
     * cannot cover a later one; num_to is that report's end. */
    size_t num_floor, num_to;
    uint32_t last_s[MAX_PII_IDS], last_e[MAX_PII_IDS];   /* last confirmed span per pattern */
} scan_ctx_t;

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static void push_cand(scan_ctx_t *c, size_t s, size_t e, unsigned entity, unsigned pat)
{
    tls_state_t *t = c->tls;
    if (c->n_cand) {
        /* The same pattern often reports one start with growing ends (or the
         * same span twice): keep only the longest. */
        cand_t *last = &t->cand[c->n_cand - 1];
        if (last->start == s && last->pat == pat && last->entity == entity) {
            if (e > last->end) last->end = (uint32_t)e;
            return;
        }
    }
    if (c->n_cand == t->cand_cap) {
        size_t ncap = t->cand_cap ? t->cand_cap * 2 : 256;
        cand_t *p = realloc(t->cand, ncap * sizeof(*p));
        if (!p) {
            c->oom = true;
            return;
        }
        t->cand = p;
        t->cand_cap = ncap;
    }
    t->cand[c->n_cand++] = (cand_t){(uint32_t)s, (uint32_t)e, (uint16_t)entity, pat};
}

/* Skip slot of the digit runs' '('/'+' reports: they find phones from the
 * lead only, so they must not hide the run's own reports (which may find a
 * longer entity further left, "1 (415) 555-2671"). */
#define LEAD_SLOT (MAX_PII_IDS - 1)

/* A built-in candidate: pattern pid matched text[from, to); slot is where
 * the confirmed span is remembered (pid, or LEAD_SLOT). */
static void pii_candidate(scan_ctx_t *c, unsigned pid, unsigned slot, size_t from, size_t to)
{
    /* A pattern reporting again inside the span it just confirmed (a digit
     * run reports once per group) adds nothing: skip the confirm. */
    if (slot < MAX_PII_IDS && to > c->last_s[slot] && to <= c->last_e[slot]) return;
    size_t s = 0, e = 0;
    bool num = (int)pid == c->s->num_id && slot != LEAD_SLOT;
    if (num) {
        /* Reports come in text order; were one to go back, forget the floor. */
        if (to < c->num_to) c->num_floor = 0;
        c->num_to = to;
        /* A floor right before `to` would read as a '('/'+' lead report. */
        from = c->num_floor + 1 < to ? c->num_floor : 0;
    }
    int ent = al_pii_confirm(pid, c->text, c->len, from, to, &s, &e);
    if (num) {
        /* On failure s is where the next report's search may start; on
         * success s is the span's start, the first start not yet refused. */
        if (s > c->num_floor && s <= to) c->num_floor = s;
    }
    if (ent < 0 || e <= s || e > c->len) return;
    if (slot < MAX_PII_IDS) {
        c->last_s[slot] = (uint32_t)s;
        c->last_e[slot] = (uint32_t)e;
    }
    push_cand(c, s, e, (unsigned)ent, PII_BASE + pid);
}

/* --- digit runs ---------------------------------------------------------- */

static inline bool is_dig(unsigned char c) { return (unsigned char)(c - '0') < 10; }
static inline bool is_run(unsigned char c)
{
    return is_dig(c) || c == ' ' || c == '.' || c == '-';
}

/* Index of the first ASCII digit in t[i, lim), or some index >= lim when
 * there is none.  Thirty-two bytes at a time where SSE2 is there (every
 * x86-64), reading up to 31 bytes past lim while they are inside t[0, len). */
static size_t next_digit(const char *t, size_t i, size_t lim, size_t len)
{
#if defined(__SSE2__)
    const __m128i lo = _mm_set1_epi8('0' - 1), hi = _mm_set1_epi8('9' + 1);
    while (i < lim && i + 32 <= len) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(t + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(t + i + 16));
        unsigned ma = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpgt_epi8(a, lo), _mm_cmplt_epi8(a, hi)));
        unsigned mb = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpgt_epi8(b, lo), _mm_cmplt_epi8(b, hi)));
        uint32_t m = ma | (mb << 16);
        if (m) return i + (size_t)__builtin_ctz(m);
        i += 32;
    }
#else
    (void)len;
#endif
    while (i < lim && !is_dig((unsigned char)t[i])) i++;
    return i;
}

/* The engine's own matcher for the built-in digit-run pattern (flag
 * AL_PAT_DIGIT_RUN): it reports exactly where Vectorscan would report
 * "[0-9][0-9. \\-]{5,}[0-9](?:[^0-9]|$)" (at the end of every digit group
 * at least seven bytes into a run of digits, spaces, dots and dashes, the
 * byte after the group included), plus once at the first digit of a run
 * led by '(' or by '+' and a non-zero digit (phones whose groups are all
 * short).  A class-led pattern is the slowest kind for Vectorscan (it
 * halved the whole database's speed on prose full of ordinary numbers).
 * digits_exact walks the runs whose first digit is before lim, from
 * c->dpos (always the start of the text, a byte that is not in a run, or
 * a place with no digit of a run before it); scan_digits skips the blocks
 * where no report can be and hands the rest to digits_exact. */
static void digits_exact(scan_ctx_t *c, size_t lim)
{
    const unsigned char *t = (const unsigned char *)c->text;
    size_t len = c->len, pos = c->dpos;
    unsigned pid = (unsigned)c->s->num_id;
    if (lim > len) lim = len;
    while (pos < lim && !c->oom) {
        size_t i = next_digit(c->text, pos, lim, len);
        if (i >= lim) {
            pos = lim;
            break;
        }
        if (i > 0 && (t[i - 1] == '(' || (t[i - 1] == '+' && t[i] != '0')))
            pii_candidate(c, pid, LEAD_SLOT, i, i + 1);
        /* Group by group: digits, then separators; the run goes on while a
         * digit follows the separators. */
        size_t j = i;
        for (;;) {
            size_t q = j;
            while (q < len && is_dig(t[q])) q++;
            size_t k = q - 1;   /* the group's last digit */
            if (k - i >= 6) {
                /* A group ending inside the span this pattern confirmed last
                 * gets that span again (confirm_num tries the same starts in
                 * the same order, and the first entity covering an earlier
                 * digit of the run covers this one too): skip it. */
                if (!(pid < LEAD_SLOT && k >= c->last_s[pid] && k < c->last_e[pid]))
                    pii_candidate(c, pid, pid < LEAD_SLOT ? pid : MAX_PII_IDS, 0,
                                  q < len ? q + 1 : q);
            }
            while (q < len && (t[q] == ' ' || t[q] == '.' || t[q] == '-')) q++;
            j = q;
            if (q >= len || !is_dig(t[q])) break;
        }
        pos = j;
    }
    if (pos > c->dpos) c->dpos = pos;
}

#define BLK 64
#define BLK_STEP 58   /* blocks overlap by the six bytes a report looks back */

#if defined(__SSE2__)
/* Bit k: p[k] is a digit. */
static inline uint64_t block_digits(const char *p)
{
    const __m128i lo = _mm_set1_epi8('0' - 1), hi = _mm_set1_epi8('9' + 1);
    uint64_t dd = 0;
    for (int q = 0; q < 4; q++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * q));
        __m128i dm = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
        dd |= (uint64_t)(unsigned)_mm_movemask_epi8(dm) << (16 * q);
    }
    return dd;
}

/* Bit k of *r: p[k] is a separator of a run (space, dot, dash); of *l:
 * p[k] is '(' or '+'. */
static inline void block_seps(const char *p, uint64_t *r, uint64_t *l)
{
    const __m128i sp = _mm_set1_epi8(' '), dot = _mm_set1_epi8('.'), dash = _mm_set1_epi8('-');
    const __m128i par = _mm_set1_epi8('('), plus = _mm_set1_epi8('+');
    uint64_t rr = 0, ll = 0;
    for (int q = 0; q < 4; q++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * q));
        __m128i rm = _mm_or_si128(_mm_cmpeq_epi8(v, sp),
                                  _mm_or_si128(_mm_cmpeq_epi8(v, dot), _mm_cmpeq_epi8(v, dash)));
        __m128i lm = _mm_or_si128(_mm_cmpeq_epi8(v, par), _mm_cmpeq_epi8(v, plus));
        rr |= (uint64_t)(unsigned)_mm_movemask_epi8(rm) << (16 * q);
        ll |= (uint64_t)(unsigned)_mm_movemask_epi8(lm) << (16 * q);
    }
    *r = rr;
    *l = ll;
}
#else
static inline uint64_t block_digits(const char *p)
{
    uint64_t dd = 0;
    for (int k = 0; k < BLK; k++) dd |= (uint64_t)is_dig((unsigned char)p[k]) << k;
    return dd;
}

static inline void block_seps(const char *p, uint64_t *r, uint64_t *l)
{
    uint64_t rr = 0, ll = 0;
    for (int k = 0; k < BLK; k++) {
        unsigned char ch = (unsigned char)p[k];
        rr |= (uint64_t)(ch == ' ' || ch == '.' || ch == '-') << k;
        ll |= (uint64_t)(ch == '(' || ch == '+') << k;
    }
    *r = rr;
    *l = ll;
}
#endif

/* Every digit-run report of the text, in order.  A block of 64 bytes needs
 * the exact walk only when some digit ends seven run bytes (a report needs
 * a digit six or more run bytes after the run's first digit) or follows
 * '(' or '+'; prose with ordinary numbers (years, prices, times) almost
 * never has either, so most blocks cost a few vector compares. */
static void scan_digits(scan_ctx_t *c)
{
    const unsigned char *t = (const unsigned char *)c->text;
    size_t len = c->len, b = 0;
    c->dpos = 0;
    for (; b + BLK <= len && !c->oom; b += BLK_STEP) {
        uint64_t d = block_digits(c->text + b), r, l;
        if (!d) continue;
        block_seps(c->text + b, &r, &l);
        r |= d;
        uint64_t r2 = r & (r << 1), r4 = r2 & (r2 << 2), r7 = r4 & (r4 << 3);
        if (!((r7 | (l << 1)) & d)) continue;
        /* Resume at the start of the run around b (no run crosses p0). */
        size_t p0 = b;
        while (p0 > c->dpos && is_run(t[p0 - 1])) p0--;
        if (p0 > c->dpos) c->dpos = p0;
        digits_exact(c, b + BLK);
    }
    if (b < len && !c->oom) {
        size_t p0 = b;
        while (p0 > c->dpos && is_run(t[p0 - 1])) p0--;
        if (p0 > c->dpos) c->dpos = p0;
        digits_exact(c, len);
    }
}

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int fl, void *ud)
{
    (void)fl;
    scan_ctx_t *c = ud;
    if (id >= INJ_BASE) {
        /* Only the combined database reports these here. */
        if (c->what & AL_SCAN_INJECT)
            al_inject_on_match(&c->r->inj, id - INJ_BASE, c->text, c->len, (size_t)from,
                               (size_t)to);
        return 0;
    }
    if (id >= CUSTOM_BASE) {
        unsigned i = id - CUSTOM_BASE;
        size_t s = (size_t)from, e = (size_t)to;
        if (e <= s) return 0;
        /* An entity is never a fragment of a longer alphanumeric token. */
        const unsigned char *t = (const unsigned char *)c->text;
        if (s > 0 && is_alnum(t[s]) && is_alnum(t[s - 1])) return 0;
        if (e < c->len && is_alnum(t[e - 1]) && is_alnum(t[e])) return 0;
        if (!al_pii_validate(c->s->custom[i].validator, c->text + s, e - s)) return 0;
        push_cand(c, s, e, AL_ENT_CUSTOM + i, id);
        return c->oom ? 1 : 0;
    }
    unsigned pid = id - PII_BASE;
    pii_candidate(c, pid, pid < LEAD_SLOT ? pid : MAX_PII_IDS, (size_t)from, (size_t)to);
    return c->oom ? 1 : 0;
}

static int cmp_start(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end > y->end ? -1 : 1;   /* longer first */
    if (x->pat != y->pat) return x->pat < y->pat ? -1 : 1;
    return 0;
}

/* Priority inside a cluster of overlapping spans: longer, then the earlier
 * pattern, then the earlier start. */
static int cmp_prio(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    uint32_t lx = x->end - x->start, ly = y->end - y->start;
    if (lx != ly) return lx > ly ? -1 : 1;
    if (x->pat != y->pat) return x->pat < y->pat ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return 0;
}

/* The digit-run candidates c->tls->cand[0, n_dig) and Vectorscan's after
 * them are each in text order as a rule: merges the two by start so that
 * resolve finds them sorted (it sorts otherwise). */
static void merge_runs(scan_ctx_t *c, size_t n_dig)
{
    tls_state_t *t = c->tls;
    size_t n = c->n_cand;
    if (n_dig == 0 || n_dig == n) return;
    cand_t *a = t->cand;
    if (cmp_start(&a[n_dig - 1], &a[n_dig]) <= 0) return;   /* already in order */
    for (size_t i = 1; i < n; i++)
        if (i != n_dig && cmp_start(&a[i - 1], &a[i]) > 0) return;   /* resolve sorts */
    if (t->tmp_cap < n) {
        size_t ncap = t->tmp_cap ? t->tmp_cap : 256;
        while (ncap < n) ncap *= 2;
        cand_t *p = realloc(t->tmp, ncap * sizeof(*p));
        if (!p) return;   /* resolve sorts instead */
        t->tmp = p;
        t->tmp_cap = ncap;
    }
    size_t i = 0, j = n_dig, k = 0;
    while (i < n_dig && j < n) t->tmp[k++] = cmp_start(&a[j], &a[i]) < 0 ? a[j++] : a[i++];
    while (i < n_dig) t->tmp[k++] = a[i++];
    while (j < n) t->tmp[k++] = a[j++];
    cand_t *sw = t->cand;
    size_t swc = t->cand_cap;
    t->cand = t->tmp;
    t->cand_cap = t->tmp_cap;
    t->tmp = sw;
    t->tmp_cap = swc;
}

/* Does [s, e) overlap any span of keep[0, n) (sorted by start, disjoint)? */
static bool overlaps_kept(const cand_t *keep, size_t n, uint32_t s, uint32_t e)
{
    size_t lo = 0, hi = n;   /* first kept with end > s */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keep[mid].end <= s) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && keep[lo].start < e;
}

/* Resolves overlaps among c[0, n) in place; returns the number kept, sorted
 * by start and disjoint.  Spans are grouped into clusters that overlap
 * transitively; inside a cluster the longest span wins (then the earlier
 * pattern), and the rest are taken greedily where they still fit. */
static size_t resolve(cand_t *c, size_t n)
{
    if (n == 0) return 0;
    /* Matches arrive in order of their end, so the spans are usually sorted
     * already; check before paying for the sort. */
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; i++) sorted = cmp_start(&c[i - 1], &c[i]) <= 0;
    if (!sorted) qsort(c, n, sizeof(*c), cmp_start);
    size_t out = 0, i = 0;
    while (i < n) {
        size_t j = i + 1;
        uint32_t reach = c[i].end;
        while (j < n && c[j].start < reach) {
            if (c[j].end > reach) reach = c[j].end;
            j++;
        }
        if (j - i == 1) {
            c[out++] = c[i];
        } else {
            cand_t *cl = c + i;
            size_t k = j - i, nk = 0;
            qsort(cl, k, sizeof(*cl), cmp_prio);
            /* Kept spans of this cluster go to cl[0, nk), sorted by start;
             * nk <= the index being examined, so nothing unread is lost. */
            for (size_t m = 0; m < k; m++) {
                cand_t x = cl[m];
                if (overlaps_kept(cl, nk, x.start, x.end)) continue;
                size_t pos = nk;
                while (pos > 0 && cl[pos - 1].start > x.start) {
                    cl[pos] = cl[pos - 1];
                    pos--;
                }
                cl[pos] = x;
                nk++;
            }
            memmove(c + out, cl, nk * sizeof(*cl));
            out += nk;
        }
        i = j;
    }
    return out;
}

typedef struct rescan_ud {
    const al_scanner_t *s;
    al_scan_result_t *r;
} rescan_ud_t;

static int on_inj_match(unsigned int id, unsigned long long from, unsigned long long to,
                        unsigned int fl, void *ud)
{
    (void)fl;
    scan_ctx_t *c = ud;
    if (id >= INJ_BASE)
        al_inject_on_match(&c->r->inj, id - INJ_BASE, c->text, c->len, (size_t)from, (size_t)to);
    return 0;
}

/* Scans a decoded payload with the same database; only injection ids count.
 * Nesting is bounded by st->depth. */
static void rescan(void *ud, al_inject_state_t *st, const char *text, size_t len)
{
    rescan_ud_t *u = ud;
    if (!u || !u->s || st != &u->r->inj || st->depth > MAX_RESCAN_DEPTH) return;
    if (!text || len == 0 || len > UINT32_MAX || !u->s->db_inj) return;
    tls_state_t *t = &t_st;
    hs_scratch_t *scr = NULL, *tmp = NULL;
    if (!t->busy && (scr = thread_scratch(u->s)) != NULL) {
        t->busy = true;
    } else {
        if (hs_clone_scratch(u->s->proto, &tmp) != HS_SUCCESS) return;
        scr = tmp;
    }
    scan_ctx_t c = {.s = u->s, .text = text, .len = len, .what = AL_SCAN_INJECT, .r = u->r};
    st->depth++;
    hs_scan(u->s->db_inj, text, (unsigned)len, 0, scr, on_inj_match, &c);
    st->depth--;
    if (tmp) hs_free_scratch(tmp);
    else t->busy = false;
}

int al_scanner_scan(const al_scanner_t *s, const char *text, size_t len, unsigned what,
                    al_scan_result_t *r)
{
    r->n_finds = 0;
    r->n_dropped = 0;
    memset(&r->inj, 0, sizeof(r->inj));
    if (!s || (!text && len)) return AL_EINVAL;
    if (len > UINT32_MAX) return AL_EINVAL;
    if (!text) text = "";

    tls_state_t *t = &t_st;
    hs_scratch_t *scr = NULL, *tmp = NULL;
    if (!t->busy) {
        scr = thread_scratch(s);
        if (!scr) return AL_ENOMEM;
        t->busy = true;
    } else {
        /* Called from inside a scan on this thread (a callback scanning
         * again): use a private scratch. */
        if (hs_clone_scratch(s->proto, &tmp) != HS_SUCCESS) return AL_ENOMEM;
        scr = tmp;
    }

    if (what & AL_SCAN_INJECT) al_inject_begin(&r->inj);
    scan_ctx_t c = {.s = s, .text = text, .len = len, .what = what, .r = r, .tls = t};
    /* A nested scan must not clobber the outer scan's candidates. */
    tls_state_t nested = {0};
    if (tmp) c.tls = &nested;

    int rc = AL_OK;
    /* Both detectors asked and the scanner has them: one pass over the
     * combined database; otherwise the PII one and/or the injection one. */
    bool both = (what & AL_SCAN_PII) && (what & AL_SCAN_INJECT) && s->db_all;
    if (len > 0 && (what & AL_SCAN_PII)) {
        if (s->num_id >= 0) scan_digits(&c);
        size_t n_dig = c.n_cand;
        hs_error_t he = c.oom ? HS_SCAN_TERMINATED
                              : hs_scan(both ? s->db_all : s->db, text, (unsigned)len, 0, scr,
                                        on_match, &c);
        if (!c.oom && he == HS_SUCCESS) merge_runs(&c, n_dig);
        if (c.oom) rc = AL_ENOMEM;
        else if (he != HS_SUCCESS && he != HS_SCAN_TERMINATED) rc = AL_EIO;
    }
    if (rc == AL_OK && len > 0 && (what & AL_SCAN_INJECT) && s->db_inj && !both) {
        if (hs_scan(s->db_inj, text, (unsigned)len, 0, scr, on_inj_match, &c) != HS_SUCCESS)
            rc = AL_EIO;
    }
    if (tmp) hs_free_scratch(tmp);
    else t->busy = false;

    if (rc == AL_OK && (what & AL_SCAN_PII)) {
        size_t kept = resolve(c.tls->cand, c.n_cand);
        size_t take = AL_MIN(kept, (size_t)AL_SCAN_MAX_FINDS);
        for (size_t i = 0; i < take; i++) {
            const cand_t *x = &c.tls->cand[i];
            r->finds[i] = (al_find_t){x->start, x->end, x->entity};
        }
        r->n_finds = take;
        r->n_dropped = kept - take;
    }
    if (c.tls == &nested) {
        free(nested.cand);
        free(nested.tmp);
    } else if (t->cand_cap > CAND_KEEP || t->tmp_cap > CAND_KEEP) {
        free(t->cand);
        t->cand = NULL;
        t->cand_cap = 0;
        free(t->tmp);
        t->tmp = NULL;
        t->tmp_cap = 0;
    }

    if (rc == AL_OK && (what & AL_SCAN_INJECT)) {
        rescan_ud_t u = {s, r};
        al_inject_end(&r->inj, text, len, rescan, &u);
    }
    if (rc != AL_OK) {
        r->n_finds = 0;
        r->n_dropped = 0;
    }
    return rc;
}
