/* verify.c - verify, prove, show and erase over the audit tables.
 *
 * verify reads audit_log once in rowid order inside one read transaction
 * (a consistent snapshot while the gateway appends).  Each row's leaf hash
 * goes into an array (32 bytes a record); a row that matches the expected
 * pattern (rowid = position + 1, canonical text, claimed "seq" = rowid,
 * "prev" = the previous row's leaf) needs nothing else, so only the rows
 * that break it are kept in full (rowid, claimed seq, prev).  When there are
 * any, the classifier rebuilds every row's facts from the two, sorts the
 * rows by claimed seq and names what happened: gaps are removals, duplicate
 * claims are insertions (the copy the next record's prev does not point
 * at), a permutation of the claims is a reordering (one line per cycle),
 * rowid differences with nothing else wrong are moves, and broken prev links
 * in claimed order are changes.  Checkpoints (stored, then extra notes) are
 * opened with the verifier keys; their roots are computed over the rows in
 * rowid order with one frontier pass that stops at each size needed, and a
 * mismatch names the interval between the largest good checkpoint below it
 * and the first record problem inside.  Record lines are sorted by seq
 * before they are reported, checkpoint lines follow.  The proof, show and
 * erase calls are straight SQL plus merkle.h / note.h / seal.h. */
#include "audit/verify.h"
#include "util/canon.h"
#include "util/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AAD_MAX 48
#define PICK_MAX 64            /* copies of one seq compared when pairing */

void al_audit_report_buf(void *ud, const char *line)
{
    al_buf_t *b = ud;
    al_buf_puts(b, line);
    al_buf_putc(b, '\n');
}

/* --- small helpers ------------------------------------------------------ */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? AL_OK : AL_EIO;
}

/* Start a read transaction (one snapshot for the whole call) unless the
 * caller's is open already; true when this call must end it. */
static bool read_begin(sqlite3 *db, int *rc)
{
    *rc = AL_OK;
    if (!sqlite3_get_autocommit(db)) return false;
    if (exec(db, "BEGIN") != AL_OK) {
        *rc = AL_EIO;
        return false;
    }
    return true;
}

static size_t aad_of(uint64_t seq, char out[AAD_MAX])
{
    int n = snprintf(out, AAD_MAX, "airlock-audit:%" PRIu64, seq);
    return n > 0 ? (size_t)n : 0;
}

/* The text of a note (bytes before the empty line, the final "\n" kept). */
static size_t note_text_len(const char *note, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (note[i] == '\n' && note[i + 1] == '\n') return i + 1;
    return 0;
}

/* Open a checkpoint note with any of the verifiers (signer name into who),
 * or, with none, parse its text unchecked.  AL_EPARSE (malformed), AL_EINVAL
 * (signed by none of them). */
static int open_cp(const char *note, size_t len, const al_verifier_t *vs, size_t nv,
                   al_checkpoint_t *cp, char *who, size_t whosz)
{
    if (who && whosz) who[0] = '\0';
    if (nv == 0) {
        size_t tl = note_text_len(note, len);
        if (!tl || al_checkpoint_parse(note, tl, cp) != AL_OK) return AL_EPARSE;
        return AL_OK;
    }
    bool parsed = false;
    for (size_t i = 0; i < nv; i++) {
        int rc = al_checkpoint_open(note, len, &vs[i], cp);
        if (rc == AL_OK) {
            if (who) snprintf(who, whosz, "%s", vs[i].name);
            return AL_OK;
        }
        if (rc != AL_EPARSE) parsed = true;
    }
    return parsed ? AL_EINVAL : AL_EPARSE;
}

static void names_of(const al_verifier_t *vs, size_t nv, al_buf_t *b)
{
    for (size_t i = 0; i < nv; i++) {
        if (i) al_buf_puts(b, " or ");
        al_buf_puts(b, vs[i].name);
    }
}

/* Skip one JSON value at p[i] (text known to be JSON); the index after it,
 * or len when it runs off the end. */
static size_t skip_value(const char *p, size_t len, size_t i)
{
    if (i >= len) return len;
    if (p[i] == '"') {
        /* the next quote not escaped: preceded by an even run of backslashes */
        for (size_t j = i + 1; j < len;) {
            const char *q = memchr(p + j, '"', len - j);
            if (!q) return len;
            size_t k = (size_t)(q - p), bs = 0;
            while (k - bs > i + 1 && p[k - bs - 1] == '\\') bs++;
            if (bs % 2 == 0) return k + 1;
            j = k + 1;
        }
        return len;
    }
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        for (; i < len; i++) {
            char c = p[i];
            if (c == '"') {
                i = skip_value(p, len, i) - 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return len;
    }
    while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']') i++;
    return i;
}

/* The top-level "seq" (a positive integer written plainly) and "prev" (64
 * hex digits) of a canonical record.  0 or AL_EPARSE. */
static int record_fields(const char *p, size_t len, int64_t *seq, uint8_t prev[AL_HASH_LEN])
{
    bool have_seq = false, have_prev = false;
    size_t i = 0;
    if (len < 2 || p[0] != '{') return AL_EPARSE;
    i = 1;
    if (p[i] == '}') return AL_EPARSE;
    while (i < len) {
        if (p[i] != '"') return AL_EPARSE;
        size_t ks = i + 1, ke = skip_value(p, len, i);
        if (ke >= len || ke < ks + 1 || p[ke] != ':') return AL_EPARSE;
        size_t klen = ke - 1 - ks, vs = ke + 1, ve = skip_value(p, len, vs);
        if (ve > len || ve == vs) return AL_EPARSE;
        if (klen == 3 && !memcmp(p + ks, "seq", 3)) {
            uint64_t v = 0;
            if (p[vs] == '0' || al_parse_u64(p + vs, ve - vs, &v) != AL_OK || v == 0 ||
                v > (uint64_t)INT64_MAX)
                return AL_EPARSE;
            *seq = (int64_t)v;
            have_seq = true;
        } else if (klen == 4 && !memcmp(p + ks, "prev", 4)) {
            if (ve - vs != 2 * AL_HASH_LEN + 2 || p[vs] != '"' ||
                al_hash_unhex(p + vs + 1, 2 * AL_HASH_LEN, prev) != AL_OK)
                return AL_EPARSE;
            have_prev = true;
        }
        if (have_seq && have_prev) break; /* the rest cannot matter */
        if (ve >= len) return AL_EPARSE;
        if (p[ve] == '}') break;
        if (p[ve] != ',') return AL_EPARSE;
        i = ve + 1;
    }
    return have_seq && have_prev ? AL_OK : AL_EPARSE;
}

/* Leaf hashes of the first `limit` rows (0 = all) in rowid order. */
static int load_leaves(sqlite3 *db, uint64_t limit, uint8_t (**leaves)[AL_HASH_LEN],
                       uint64_t *n)
{
    sqlite3_stmt *st = NULL;
    uint8_t(*lv)[AL_HASH_LEN] = NULL;
    uint64_t cnt = 0, cap = 0;
    int rc = AL_EIO;
    *leaves = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(db, "SELECT record FROM audit_log ORDER BY seq LIMIT ?1", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, limit && limit <= (uint64_t)INT64_MAX ? (int64_t)limit : -1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            uint64_t nc = cap ? cap * 2 : 1024;
            void *np = realloc(lv, (size_t)nc * AL_HASH_LEN);
            if (!np) {
                rc = AL_ENOMEM;
                goto out;
            }
            lv = np;
            cap = nc;
        }
        const void *t = sqlite3_column_blob(st, 0);
        size_t tl = (size_t)sqlite3_column_bytes(st, 0);
        al_merkle_leaf_hash(t ? t : "", tl, lv[cnt++]);
    }
    if (s != SQLITE_DONE) goto out;
    *leaves = lv;
    *n = cnt;
    lv = NULL;
    rc = AL_OK;
out:
    free(lv);
    sqlite3_finalize(st);
    return rc;
}

/* --- verify: the walk ------------------------------------------------------ */

typedef struct xrow {          /* a row that breaks the expected pattern */
    uint64_t pos;              /* 0-based position in rowid order */
    int64_t rowid;
    int64_t claimed;           /* 0 when unreadable */
    uint8_t prev[AL_HASH_LEN];
} xrow_t;

typedef struct problem {
    uint64_t seq;              /* for sorting and narrowing */
    uint64_t order;            /* report order among equal seqs */
    char *line;
} problem_t;

typedef struct vctx {
    sqlite3 *db;
    const al_audit_verify_opts_t *o;
    al_audit_stats_t *stats;
    uint8_t (*leaves)[AL_HASH_LEN];
    uint64_t n, cap;
    xrow_t *x;
    size_t nx, capx;
    problem_t *pr;
    size_t npr, cappr;
    bool structural;           /* removed / inserted / reordered found */
    uint64_t max_claimed;      /* highest seq a readable record claims */
    int64_t max_bad_rowid;     /* highest rowid of an unreadable record */
    int err;
} vctx_t;

static void add_problem(vctx_t *v, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_problem(vctx_t *v, uint64_t seq, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (v->npr == v->cappr) {
        size_t nc = v->cappr ? v->cappr * 2 : 16;
        void *np = realloc(v->pr, nc * sizeof *v->pr);
        if (!np) {
            v->err = AL_ENOMEM;
            return;
        }
        v->pr = np;
        v->cappr = nc;
    }
    char *dup = strdup(line);
    if (!dup) {
        v->err = AL_ENOMEM;
        return;
    }
    v->pr[v->npr].seq = seq;
    v->pr[v->npr].order = v->npr;
    v->pr[v->npr].line = dup;
    v->npr++;
}

static void report(vctx_t *v, const char *line)
{
    v->stats->problems++;
    if (v->o->report) v->o->report(v->o->report_ud, line);
}

static int add_x(vctx_t *v, const xrow_t *r)
{
    if (v->nx == v->capx) {
        size_t nc = v->capx ? v->capx * 2 : 64;
        void *np = realloc(v->x, nc * sizeof *v->x);
        if (!np) return AL_ENOMEM;
        v->x = np;
        v->capx = nc;
    }
    v->x[v->nx++] = *r;
    return AL_OK;
}

static int scan_rows(vctx_t *v)
{
    static const uint8_t zero[AL_HASH_LEN];
    sqlite3_stmt *st = NULL;
    int rc = AL_EIO;
    if (sqlite3_prepare_v2(v->db, "SELECT seq, record FROM audit_log ORDER BY seq", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (v->n == v->cap) {
            uint64_t nc = v->cap ? v->cap * 2 : 4096;
            void *np = realloc(v->leaves, (size_t)nc * AL_HASH_LEN);
            if (!np) {
                rc = AL_ENOMEM;
                goto out;
            }
            v->leaves = np;
            v->cap = nc;
        }
        uint64_t pos = v->n;
        int64_t rowid = sqlite3_column_int64(st, 0);
        const char *t = (const char *)sqlite3_column_blob(st, 1);
        size_t tl = (size_t)sqlite3_column_bytes(st, 1);
        if (!t) t = "";
        al_merkle_leaf_hash(t, tl, v->leaves[pos]);
        xrow_t r = {.pos = pos, .rowid = rowid};
        bool ok = al_json_is_canon(t, tl) && record_fields(t, tl, &r.claimed, r.prev) == AL_OK;
        if (!ok) {
            r.claimed = 0;
            memset(r.prev, 0, sizeof r.prev);
        }
        if (ok && (uint64_t)r.claimed > v->max_claimed) v->max_claimed = (uint64_t)r.claimed;
        if (!ok && rowid > v->max_bad_rowid) v->max_bad_rowid = rowid;
        const uint8_t *want = pos ? v->leaves[pos - 1] : zero;
        if (!ok || rowid != (int64_t)pos + 1 || r.claimed != rowid ||
            memcmp(r.prev, want, AL_HASH_LEN) != 0) {
            if ((rc = add_x(v, &r)) != AL_OK) goto out;
        }
        v->n++;
    }
    if (s != SQLITE_DONE) goto out;
    rc = AL_OK;
out:
    sqlite3_finalize(st);
    return rc;
}

/* The facts of the row at pos: an exception's, else the expected ones. */
static void row_at(const vctx_t *v, uint64_t pos, xrow_t *r)
{
    size_t lo = 0, hi = v->nx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->x[mid].pos < pos) lo = mid + 1;
        else hi = mid;
    }
    if (lo < v->nx && v->x[lo].pos == pos) {
        *r = v->x[lo];
        return;
    }
    r->pos = pos;
    r->rowid = (int64_t)pos + 1;
    r->claimed = (int64_t)pos + 1;
    if (pos) memcpy(r->prev, v->leaves[pos - 1], AL_HASH_LEN);
    else memset(r->prev, 0, AL_HASH_LEN);
}

typedef struct ent {
    int64_t claimed;           /* for unreadable rows: the rowid */
    uint64_t pos;
    int64_t rowid;
    bool unreadable;
    bool dropped;              /* an inserted copy, or an unreadable duplicate */
    uint8_t prev[AL_HASH_LEN];
} ent_t;

static int cmp_claimed(const void *a, const void *b)
{
    const ent_t *x = a, *y = b;
    if (x->claimed != y->claimed) return x->claimed < y->claimed ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

typedef struct prank {
    uint64_t pos, rank;
} prank_t;

static int cmp_pos(const void *a, const void *b)
{
    const prank_t *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void report_range(vctx_t *v, uint64_t a, uint64_t b, const char *what)
{
    if (a == b) add_problem(v, a, "record %" PRIu64 " %s", a, what);
    else add_problem(v, a, "records %" PRIu64 "..%" PRIu64 " %s", a, b, what);
}

/* Pick the genuine copy among e[g0..g1) (same claimed seq, several readable):
 * the one the next record's prev names, else the one whose prev names the
 * previous genuine record, else the one at rowid == seq, else the first. */
static size_t pick_genuine(const vctx_t *v, ent_t *e, size_t ne, size_t g0, size_t g1,
                           const uint8_t *prev_leaf)
{
    size_t next0 = g1, next1 = g1, hit = SIZE_MAX, nhit = 0;
    while (next1 < ne && e[next1].claimed == e[g0].claimed + 1) next1++;
    /* a hostile store may hold any number of copies: bound the pairing */
    if (next1 - next0 > PICK_MAX) next1 = next0 + PICK_MAX;
    for (size_t i = g0; i < g1 && i < g0 + PICK_MAX; i++) {
        if (e[i].unreadable) continue;
        for (size_t j = next0; j < next1; j++) {
            if (!e[j].unreadable && !memcmp(e[j].prev, v->leaves[e[i].pos], AL_HASH_LEN)) {
                if (hit != i) nhit++;
                hit = i;
                break;
            }
        }
    }
    if (nhit == 1) return hit;
    if (prev_leaf) {
        hit = SIZE_MAX;
        nhit = 0;
        for (size_t i = g0; i < g1; i++)
            if (!e[i].unreadable && !memcmp(e[i].prev, prev_leaf, AL_HASH_LEN)) {
                hit = i;
                nhit++;
            }
        if (nhit == 1) return hit;
    }
    for (size_t i = g0; i < g1; i++)
        if (!e[i].unreadable && e[i].rowid == e[i].claimed) return i;
    for (size_t i = g0; i < g1; i++)
        if (!e[i].unreadable) return i;
    return g0;
}

/* The records the store has, for truncation messages: the highest seq a
 * readable record claims, or the rowid of an unreadable one up to the row
 * count (junk far out does not count). */
static uint64_t have_records(const vctx_t *v)
{
    uint64_t bad = v->max_bad_rowid > 0 ? (uint64_t)v->max_bad_rowid : 0;
    if (bad > v->n) bad = v->n;
    return v->max_claimed > bad ? v->max_claimed : bad;
}

static int classify(vctx_t *v)
{
    static const uint8_t zero[AL_HASH_LEN];
    ent_t *e = NULL;
    prank_t *pr = NULL;
    uint8_t *seen = NULL;
    size_t ne = 0;
    int rc = AL_ENOMEM;

    e = malloc((size_t)v->n * sizeof *e + 1);
    if (!e) goto out;
    for (uint64_t pos = 0; pos < v->n; pos++) {
        xrow_t r;
        row_at(v, pos, &r);
        ent_t *x = &e[ne];
        memset(x, 0, sizeof *x);
        x->pos = pos;
        x->rowid = r.rowid;
        x->unreadable = r.claimed == 0;
        memcpy(x->prev, r.prev, AL_HASH_LEN);
        if (x->unreadable) {
            add_problem(v, r.rowid > 0 ? (uint64_t)r.rowid : 0,
                        "record at position %" PRId64 ": unreadable (changed)", r.rowid);
            /* placed by its rowid, unless that lies past every readable
             * record (junk appended far out is not a gap of removals) */
            if (r.rowid <= 0 || (uint64_t)r.rowid > have_records(v)) continue;
            x->claimed = r.rowid;
        } else {
            x->claimed = r.claimed;
        }
        ne++;
    }
    qsort(e, ne, sizeof *e, cmp_claimed);

    /* Gaps and duplicates, in claimed order. */
    int64_t want = 1;
    const uint8_t *prev_leaf = NULL;
    for (size_t g0 = 0; g0 < ne;) {
        size_t g1 = g0 + 1;
        while (g1 < ne && e[g1].claimed == e[g0].claimed) g1++;
        int64_t c = e[g0].claimed;
        if (c > want) {
            report_range(v, (uint64_t)want, (uint64_t)c - 1, "removed");
            v->structural = true;
            prev_leaf = NULL;
        }
        size_t readable = 0;
        for (size_t i = g0; i < g1; i++) readable += !e[i].unreadable;
        if (g1 - g0 > 1) {
            size_t keep = pick_genuine(v, e, ne, g0, g1, prev_leaf);
            for (size_t i = g0; i < g1; i++) {
                if (i == keep) continue;
                e[i].dropped = true;
                if (!e[i].unreadable && readable > 1) {
                    add_problem(v, (uint64_t)c, "record %" PRId64 " inserted", c);
                    v->structural = true;
                }
            }
            if (readable == 0) e[keep].dropped = false;
            prev_leaf = e[keep].unreadable ? NULL : v->leaves[e[keep].pos];
        } else {
            prev_leaf = e[g0].unreadable ? NULL : v->leaves[e[g0].pos];
        }
        want = c + 1;
        g0 = g1;
    }

    /* Order: the kept readable rows' ranks by claimed seq, walked by position. */
    size_t nk = 0;
    pr = malloc(ne * sizeof *pr + 1);
    if (!pr) goto out;
    for (size_t i = 0; i < ne; i++)
        if (!e[i].dropped && !e[i].unreadable) pr[nk++] = (prank_t){e[i].pos, i};
    /* rank = index among the kept, in claimed order */
    for (size_t i = 0; i < nk; i++) pr[i].rank = i;
    /* remember each kept entry's e index by rank before sorting by position */
    size_t *eidx = malloc(nk * sizeof *eidx + 1);
    if (!eidx) goto out;
    for (size_t i = 0, k = 0; i < ne; i++)
        if (!e[i].dropped && !e[i].unreadable) eidx[k++] = i;
    qsort(pr, nk, sizeof *pr, cmp_pos);
    seen = calloc(nk + 1, 1);
    if (!seen) {
        free(eidx);
        goto out;
    }
    bool reordered = false;
    for (size_t i = 0; i < nk; i++) {
        if (seen[i] || pr[i].rank == i) continue;
        int64_t lo = INT64_MAX, hi = 0;
        size_t j = i;
        while (!seen[j]) {
            seen[j] = 1;
            int64_t c = e[eidx[pr[j].rank]].claimed;
            if (c < lo) lo = c;
            if (c > hi) hi = c;
            j = pr[j].rank;
        }
        add_problem(v, (uint64_t)lo, "records %" PRId64 " and %" PRId64 " reordered", lo, hi);
        reordered = true;
    }
    if (reordered) v->structural = true;

    /* Moves: only when nothing structural explains a rowid difference. */
    if (!v->structural) {
        int64_t run0 = 0, run1 = 0;
        for (size_t k = 0; k < nk; k++) {
            const ent_t *x = &e[eidx[k]];
            if (x->rowid == x->claimed) continue;
            if (run0 && x->claimed == run1 + 1) {
                run1 = x->claimed;
                continue;
            }
            if (run0) report_range(v, (uint64_t)run0, (uint64_t)run1, "moved");
            run0 = run1 = x->claimed;
        }
        if (run0) report_range(v, (uint64_t)run0, (uint64_t)run1, "moved");
    }

    /* Chain, in claimed order over the kept rows (unreadable ones included
     * as links that cannot be checked). */
    const ent_t *last = NULL;
    for (size_t i = 0; i < ne; i++) {
        const ent_t *x = &e[i];
        if (x->dropped) continue;
        if (!x->unreadable && x->claimed == 1 && memcmp(x->prev, zero, AL_HASH_LEN) != 0)
            add_problem(v, 1, "record 1 changed");
        if (last && !last->unreadable && !x->unreadable && x->claimed == last->claimed + 1 &&
            memcmp(x->prev, v->leaves[last->pos], AL_HASH_LEN) != 0 &&
            !(last->claimed == 1 && memcmp(last->prev, zero, AL_HASH_LEN) != 0))
            add_problem(v, (uint64_t)last->claimed, "record %" PRId64 " changed", last->claimed);
        last = x;
    }
    free(eidx);
    rc = v->err ? v->err : AL_OK;
out:
    free(seen);
    free(pr);
    free(e);
    return rc;
}

/* The appender's tail (audit_state) against the rows: a state ahead of the
 * highest record is a truncation, a last leaf other than the last record's
 * a change of that record. */
static void check_state(vctx_t *v)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(v->db, "SELECT size, last_leaf FROM audit_state WHERE id = 1", -1,
                           &st, NULL) != SQLITE_OK)
        return; /* no such table: nothing to compare with */
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t size = sqlite3_column_int64(st, 0);
        const void *ll = sqlite3_column_blob(st, 1);
        int lln = sqlite3_column_bytes(st, 1);
        uint64_t have = have_records(v);
        if (size > 0 && (uint64_t)size > have) {
            add_problem(v, have + 1,
                        "log truncated: the appender's state covers %" PRId64
                        " records, the store has %" PRIu64 " (records %" PRIu64 "..%" PRId64
                        " missing)",
                        size, have, have + 1, size);
        } else if (size > 0 && v->n && ll && lln == AL_HASH_LEN) {
            xrow_t r;
            row_at(v, v->n - 1, &r);
            bool named = false;
            for (size_t i = 0; i < v->npr; i++)
                if (v->pr[i].seq == (uint64_t)size) named = true;
            if (r.claimed == size && !named &&
                memcmp(ll, v->leaves[v->n - 1], AL_HASH_LEN) != 0)
                add_problem(v, (uint64_t)size, "record %" PRId64 " changed", size);
        }
    }
    sqlite3_finalize(st);
}

/* --- verify: checkpoints --------------------------------------------------- */

typedef struct vcp {
    char label[96];
    char msg[512];             /* why it is not usable ("" = usable) */
    bool usable;               /* signed (or unchecked) and of our origin */
    al_checkpoint_t cp;
    uint8_t computed[AL_HASH_LEN];
    bool have_computed;
    bool good;
} vcp_t;

typedef struct cpset {
    vcp_t *c;
    size_t n, cap;
} cpset_t;

static int cp_add(vctx_t *v, cpset_t *s, const char *label, const char *note, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        void *np = realloc(s->c, nc * sizeof *s->c);
        if (!np) return AL_ENOMEM;
        s->c = np;
        s->cap = nc;
    }
    vcp_t *c = &s->c[s->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->label, sizeof c->label, "%s", label);
    v->stats->checkpoints++;
    const al_audit_verify_opts_t *o = v->o;
    int rc = len > AL_NOTE_MAX ? AL_EPARSE
                               : open_cp(note, len, o->verifiers, o->n_verifiers, &c->cp, NULL, 0);
    if (rc == AL_EINVAL) {
        al_buf_t names;
        al_buf_init(&names, 400);
        names_of(o->verifiers, o->n_verifiers, &names);
        snprintf(c->msg, sizeof c->msg, "checkpoint %s: not signed by %s", label,
                 names.p ? names.p : "");
        al_buf_free(&names);
        return AL_OK;
    }
    if (rc != AL_OK) {
        snprintf(c->msg, sizeof c->msg, "checkpoint %s: unreadable (not a checkpoint note)",
                 label);
        return AL_OK;
    }
    if (o->n_verifiers == 0) v->stats->unsigned_checked++;
    if (o->origin && strcmp(o->origin, c->cp.origin) != 0) {
        snprintf(c->msg, sizeof c->msg, "checkpoint %s: origin '%.200s' is not '%.200s'", label,
                 c->cp.origin, o->origin);
        return AL_OK;
    }
    c->usable = true;
    return AL_OK;
}

static int load_stored_cps(vctx_t *v, cpset_t *s)
{
    sqlite3_stmt *st = NULL;
    int rc = AL_EIO, srow;
    if (sqlite3_prepare_v2(v->db, "SELECT id, note FROM audit_checkpoints ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    while ((srow = sqlite3_step(st)) == SQLITE_ROW) {
        char label[32];
        snprintf(label, sizeof label, "%" PRId64, (int64_t)sqlite3_column_int64(st, 0));
        const char *note = (const char *)sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if ((rc = cp_add(v, s, label, note ? note : "", len)) != AL_OK) goto out;
    }
    rc = srow == SQLITE_DONE ? AL_OK : AL_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

bool al_audit_note_next(const char *p, size_t len, size_t *off, size_t *start, size_t *nlen)
{
    size_t i = *off;
    while (p && i < len && (p[i] == '\n' || p[i] == '\r')) i++;
    if (!p || i >= len) {
        *off = len;
        return false;
    }
    size_t s0 = i, end = len;
    size_t tl = note_text_len(p + s0, len - s0);
    if (tl) {
        size_t j = s0 + tl + 1; /* first signature line */
        while (j < len && p[j] != '\n') {
            const char *nl = memchr(p + j, '\n', len - j);
            j = nl ? (size_t)(nl - p) + 1 : len;
        }
        end = j;
    }
    *start = s0;
    *nlen = end - s0;
    *off = end;
    return true;
}

static int load_extra_cps(vctx_t *v, cpset_t *s)
{
    const char *lab = v->o->notes_label ? v->o->notes_label : "file";
    size_t off = 0, start, nlen, k = 0;
    while (al_audit_note_next(v->o->notes, v->o->notes_len, &off, &start, &nlen)) {
        char label[96];
        snprintf(label, sizeof label, "%.80s#%zu", lab, ++k);
        int rc = cp_add(v, s, label, v->o->notes + start, nlen);
        if (rc != AL_OK) return rc;
    }
    return AL_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Roots at every size some usable checkpoint needs, in one frontier pass. */
static int compute_roots(vctx_t *v, cpset_t *s)
{
    uint64_t *sizes = malloc(s->n * sizeof *sizes + 1);
    size_t ns = 0;
    if (!sizes) return AL_ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        if (s->c[i].usable && s->c[i].cp.size <= v->n) sizes[ns++] = s->c[i].cp.size;
    qsort(sizes, ns, sizeof *sizes, cmp_u64);
    al_merkle_frontier_t *f = malloc(sizeof *f);
    uint8_t(*roots)[AL_HASH_LEN] = malloc(ns * AL_HASH_LEN + 1);
    if (!f || !roots) {
        free(f);
        free(roots);
        free(sizes);
        return AL_ENOMEM;
    }
    al_merkle_frontier_init(f);
    size_t k = 0;
    uint64_t i = 0;
    while (k < ns) {
        if (f->size == sizes[k]) {
            if (sizes[k] == 0) al_merkle_empty_root(roots[k]);
            else al_merkle_frontier_root(f, roots[k]);
            k++;
            continue;
        }
        al_merkle_frontier_append(f, v->leaves[i++]);
    }
    /* The whole log's root for the summary. */
    for (; i < v->n; i++) al_merkle_frontier_append(f, v->leaves[i]);
    if (v->n) al_merkle_frontier_root(f, v->stats->root);
    else al_merkle_empty_root(v->stats->root);
    for (size_t c = 0; c < s->n; c++) {
        vcp_t *cp = &s->c[c];
        if (!cp->usable || cp->cp.size > v->n) continue;
        uint64_t *hit = bsearch(&cp->cp.size, sizes, ns, sizeof *sizes, cmp_u64);
        if (!hit) continue;
        memcpy(cp->computed, roots[hit - sizes], AL_HASH_LEN);
        cp->have_computed = true;
        cp->good = !memcmp(cp->computed, cp->cp.root, AL_HASH_LEN);
    }
    free(roots);
    free(f);
    free(sizes);
    return AL_OK;
}

static void judge_cps(vctx_t *v, cpset_t *s)
{
    char line[512];
    for (size_t i = 0; i < s->n; i++) {
        const vcp_t *c = &s->c[i];
        if (!c->usable) {
            report(v, c->msg);
            continue;
        }
        if (c->cp.size > v->n && c->cp.size > have_records(v)) {
            uint64_t have = have_records(v);
            snprintf(line, sizeof line,
                     "log truncated: checkpoint %s covers %" PRIu64
                     " records, the store has %" PRIu64 " (records %" PRIu64 "..%" PRIu64
                     " missing)",
                     c->label, c->cp.size, have, have + 1, c->cp.size);
            report(v, line);
            continue;
        }
        if (c->good) continue; /* a size beyond the rows but not the claims: a mismatch */
        uint64_t a = 0, b = c->cp.size;
        for (size_t j = 0; j < s->n; j++)
            if (s->c[j].good && s->c[j].cp.size < c->cp.size && s->c[j].cp.size > a)
                a = s->c[j].cp.size;
        for (size_t j = 0; j < v->npr; j++)
            if (v->pr[j].seq > a && v->pr[j].seq < b) b = v->pr[j].seq;
        snprintf(line, sizeof line,
                 "checkpoint %s (size %" PRIu64 "): root mismatch; first bad record in (%" PRIu64
                 ", %" PRIu64 "]",
                 c->label, c->cp.size, a, b);
        report(v, line);
    }
}

static int cmp_problem(const void *a, const void *b)
{
    const problem_t *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

int al_audit_verify(sqlite3 *db, const al_audit_verify_opts_t *o, al_audit_stats_t *stats)
{
    vctx_t v;
    cpset_t cps = {0};
    al_audit_verify_opts_t none = {0};
    memset(stats, 0, sizeof *stats);
    memset(&v, 0, sizeof v);
    v.db = db;
    v.o = o ? o : &none;
    v.stats = stats;
    int rc;
    bool in_tx = read_begin(db, &rc);
    if (rc == AL_OK) rc = scan_rows(&v);
    if (rc == AL_OK && v.nx) rc = classify(&v);
    if (rc == AL_OK) check_state(&v);
    if (rc == AL_OK) rc = v.err;
    if (rc == AL_OK) rc = load_stored_cps(&v, &cps);
    if (rc == AL_OK) rc = load_extra_cps(&v, &cps);
    if (in_tx) exec(db, "COMMIT");
    if (rc == AL_OK) rc = compute_roots(&v, &cps);
    if (rc != AL_OK) goto out;
    stats->records = v.n;
    /* record lines first, in seq order, then the checkpoints' */
    if (v.npr) qsort(v.pr, v.npr, sizeof *v.pr, cmp_problem);
    for (size_t i = 0; i < v.npr; i++) report(&v, v.pr[i].line);
    judge_cps(&v, &cps);
out:
    for (size_t i = 0; i < v.npr; i++) free(v.pr[i].line);
    free(v.pr);
    free(v.x);
    free(v.leaves);
    free(cps.c);
    return rc;
}

/* --- proofs ---------------------------------------------------------------- */

static void put_hex(al_buf_t *b, const uint8_t h[AL_HASH_LEN])
{
    char hex[2 * AL_HASH_LEN + 1];
    al_hash_hex(h, hex);
    al_buf_putc(b, '"');
    al_buf_append(b, hex, 2 * AL_HASH_LEN);
    al_buf_putc(b, '"');
}

static void put_path(al_buf_t *b, const uint8_t (*path)[AL_HASH_LEN], size_t n)
{
    al_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) al_buf_putc(b, ',');
        put_hex(b, path[i]);
    }
    al_buf_putc(b, ']');
}

/* A stored checkpoint note: the newest (highest id) with size column >=
 * min_size when exact is false, else with size column == min_size; new_only
 * picks the newest whatever its size.  note is malloc'd. */
static int stored_note(sqlite3 *db, const char *sql, uint64_t size, char **note, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = AL_EIO;
    *note = NULL;
    *len = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) goto out;
    if (size > (uint64_t)INT64_MAX) size = (uint64_t)INT64_MAX;
    sqlite3_bind_int64(st, 1, (int64_t)size);
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) {
        rc = AL_ENOTFOUND;
        goto out;
    }
    if (s != SQLITE_ROW) goto out;
    const char *p = (const char *)sqlite3_column_blob(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    *note = malloc(n + 1);
    if (!*note) {
        rc = AL_ENOMEM;
        goto out;
    }
    if (n) memcpy(*note, p, n);
    (*note)[n] = '\0';
    *len = n;
    rc = AL_OK;
out:
    sqlite3_finalize(st);
    return rc;
}

int al_audit_proof(sqlite3 *db, uint64_t seq, const char *note, size_t note_len, al_buf_t *out,
                   char *err, size_t errlen)
{
    char *stored = NULL;
    uint8_t(*leaves)[AL_HASH_LEN] = NULL;
    uint8_t path[AL_MERKLE_MAX_PROOF][AL_HASH_LEN];
    uint8_t root[AL_HASH_LEN], leaf[AL_HASH_LEN];
    size_t plen = 0;
    uint64_t n = 0;
    al_checkpoint_t cp;
    sqlite3_stmt *st = NULL;
    bool in_tx = false;
    int rc;

    if (seq == 0 || seq > (uint64_t)INT64_MAX) {
        seterr(err, errlen, "no record %" PRIu64, seq);
        return AL_ENOTFOUND;
    }
    in_tx = read_begin(db, &rc);
    if (rc != AL_OK) {
        seterr(err, errlen, "cannot read the log: %s", sqlite3_errmsg(db));
        return rc;
    }
    if (!note) {
        rc = stored_note(db,
                         "SELECT note FROM audit_checkpoints WHERE size >= ?1 "
                         "ORDER BY id DESC LIMIT 1",
                         seq, &stored, &note_len);
        if (rc == AL_ENOTFOUND) {
            seterr(err, errlen, "no checkpoint covers record %" PRIu64 " yet", seq);
            goto out;
        }
        if (rc != AL_OK) {
            seterr(err, errlen, "cannot read the checkpoints: %s", sqlite3_errmsg(db));
            goto out;
        }
        note = stored;
    }
    if (open_cp(note, note_len, NULL, 0, &cp, NULL, 0) != AL_OK) {
        seterr(err, errlen, "the checkpoint is not a checkpoint note");
        rc = AL_EINVAL;
        goto out;
    }
    if (cp.size < seq) {
        seterr(err, errlen, "the checkpoint (size %" PRIu64 ") does not cover record %" PRIu64,
               cp.size, seq);
        rc = AL_ENOTFOUND;
        goto out;
    }
    if ((rc = load_leaves(db, cp.size, &leaves, &n)) != AL_OK) {
        seterr(err, errlen, "cannot read the log: %s",
               rc == AL_ENOMEM ? "out of memory" : sqlite3_errmsg(db));
        goto out;
    }
    if (n < cp.size) {
        seterr(err, errlen,
               "the checkpoint covers %" PRIu64 " records but the store has %" PRIu64
               " (run airlock audit verify)",
               cp.size, n);
        rc = AL_EINVAL;
        goto out;
    }
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])leaves, cp.size, root);
    if (memcmp(root, cp.root, AL_HASH_LEN) != 0) {
        seterr(err, errlen,
               "the store's first %" PRIu64 " records do not hash to the checkpoint's root "
               "(run airlock audit verify)",
               cp.size);
        rc = AL_EINVAL;
        goto out;
    }
    rc = AL_EIO;
    if (sqlite3_prepare_v2(db, "SELECT record FROM audit_log WHERE seq = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        seterr(err, errlen, "cannot read the log: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    if (sqlite3_step(st) != SQLITE_ROW) {
        seterr(err, errlen, "no record %" PRIu64, seq);
        rc = AL_ENOTFOUND;
        goto out;
    }
    const char *rec = (const char *)sqlite3_column_blob(st, 0);
    size_t rlen = (size_t)sqlite3_column_bytes(st, 0);
    if (!rec) rec = "";
    int64_t claimed = 0;
    uint8_t prev[AL_HASH_LEN];
    al_merkle_leaf_hash(rec, rlen, leaf);
    if (memcmp(leaf, leaves[seq - 1], AL_HASH_LEN) != 0 ||
        record_fields(rec, rlen, &claimed, prev) != AL_OK || claimed != (int64_t)seq) {
        seterr(err, errlen, "record %" PRIu64 " is not leaf %" PRIu64
                            " of the log (run airlock audit verify)", seq, seq - 1);
        rc = AL_EINVAL;
        goto out;
    }
    if ((rc = al_merkle_inclusion_proof((const uint8_t(*)[AL_HASH_LEN])leaves, n, seq - 1,
                                        cp.size, path, AL_MERKLE_MAX_PROOF, &plen)) != AL_OK) {
        seterr(err, errlen, "cannot build the proof: %s", al_strerror(rc));
        goto out;
    }
    al_buf_printf(out, "{\"seq\":%" PRIu64 ",\"record\":", seq);
    al_buf_json_str(out, rec, rlen);
    al_buf_puts(out, ",\"leaf_hash\":");
    put_hex(out, leaf);
    al_buf_printf(out, ",\"tree_size\":%" PRIu64 ",\"proof\":", cp.size);
    put_path(out, (const uint8_t(*)[AL_HASH_LEN])path, plen);
    al_buf_puts(out, ",\"checkpoint\":");
    al_buf_json_str(out, note, note_len);
    al_buf_putc(out, '}');
    rc = out->err;
    if (rc) seterr(err, errlen, "%s", al_strerror(rc));
out:
    sqlite3_finalize(st);
    if (in_tx) exec(db, "COMMIT");
    free(leaves);
    free(stored);
    return rc;
}

int al_audit_consistency(sqlite3 *db, uint64_t old_size, uint64_t new_size, al_buf_t *out,
                         char *err, size_t errlen)
{
    char *onote = NULL, *nnote = NULL;
    size_t olen = 0, nlen = 0, plen = 0;
    uint8_t(*leaves)[AL_HASH_LEN] = NULL;
    uint8_t path[AL_MERKLE_MAX_PROOF][AL_HASH_LEN];
    uint8_t oroot[AL_HASH_LEN], nroot[AL_HASH_LEN];
    al_checkpoint_t ocp, ncp;
    uint64_t n = 0;
    int rc;

    if (old_size == 0) {
        seterr(err, errlen, "--old must be at least 1");
        return AL_EINVAL;
    }
    bool in_tx = read_begin(db, &rc);
    if (rc != AL_OK) {
        seterr(err, errlen, "cannot read the log: %s", sqlite3_errmsg(db));
        return rc;
    }
    static const char by_size[] =
        "SELECT note FROM audit_checkpoints WHERE size = ?1 ORDER BY id DESC LIMIT 1";
    static const char newest[] =
        "SELECT note FROM audit_checkpoints WHERE ?1 >= 0 ORDER BY id DESC LIMIT 1";
    rc = stored_note(db, by_size, old_size, &onote, &olen);
    if (rc == AL_OK) rc = stored_note(db, new_size ? by_size : newest, new_size, &nnote, &nlen);
    if (rc == AL_ENOTFOUND) {
        seterr(err, errlen, "no stored checkpoint of size %" PRIu64,
               onote ? new_size : old_size);
        goto out;
    }
    if (rc != AL_OK) {
        seterr(err, errlen, "cannot read the checkpoints: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (open_cp(onote, olen, NULL, 0, &ocp, NULL, 0) != AL_OK ||
        open_cp(nnote, nlen, NULL, 0, &ncp, NULL, 0) != AL_OK) {
        seterr(err, errlen, "a stored checkpoint is not a checkpoint note");
        rc = AL_EINVAL;
        goto out;
    }
    if (ocp.size != old_size || (new_size && ncp.size != new_size)) {
        seterr(err, errlen, "a stored checkpoint's size column disagrees with its note");
        rc = AL_EINVAL;
        goto out;
    }
    if (ocp.size > ncp.size) {
        seterr(err, errlen, "--old %" PRIu64 " is larger than the new size %" PRIu64, ocp.size,
               ncp.size);
        rc = AL_EINVAL;
        goto out;
    }
    if ((rc = load_leaves(db, ncp.size, &leaves, &n)) != AL_OK) {
        seterr(err, errlen, "cannot read the log: %s",
               rc == AL_ENOMEM ? "out of memory" : sqlite3_errmsg(db));
        goto out;
    }
    rc = AL_EINVAL;
    if (n < ncp.size) {
        seterr(err, errlen,
               "the checkpoint covers %" PRIu64 " records but the store has %" PRIu64
               " (run airlock audit verify)",
               ncp.size, n);
        goto out;
    }
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])leaves, ocp.size, oroot);
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])leaves, ncp.size, nroot);
    if (memcmp(oroot, ocp.root, AL_HASH_LEN) || memcmp(nroot, ncp.root, AL_HASH_LEN)) {
        seterr(err, errlen, "the store's records do not hash to the checkpoints' roots "
                            "(run airlock audit verify)");
        goto out;
    }
    if ((rc = al_merkle_consistency_proof((const uint8_t(*)[AL_HASH_LEN])leaves, n, ocp.size,
                                          ncp.size, path, AL_MERKLE_MAX_PROOF, &plen)) !=
        AL_OK) {
        seterr(err, errlen, "cannot build the proof: %s", al_strerror(rc));
        goto out;
    }
    al_buf_printf(out, "{\"old_size\":%" PRIu64 ",\"new_size\":%" PRIu64 ",\"old_root\":",
                  ocp.size, ncp.size);
    put_hex(out, oroot);
    al_buf_puts(out, ",\"new_root\":");
    put_hex(out, nroot);
    al_buf_puts(out, ",\"proof\":");
    put_path(out, (const uint8_t(*)[AL_HASH_LEN])path, plen);
    al_buf_puts(out, ",\"old_checkpoint\":");
    al_buf_json_str(out, onote, olen);
    al_buf_puts(out, ",\"new_checkpoint\":");
    al_buf_json_str(out, nnote, nlen);
    al_buf_putc(out, '}');
    rc = out->err;
    if (rc) seterr(err, errlen, "%s", al_strerror(rc));
out:
    if (in_tx) exec(db, "COMMIT");
    free(leaves);
    free(onote);
    free(nnote);
    return rc;
}

/* --- offline proof checks -------------------------------------------------- */

static yajl_val doc_parse(const char *doc, size_t len, char *err, size_t errlen)
{
    char ybuf[128];
    if (len > AL_AUDIT_PROOF_MAX) {
        seterr(err, errlen, "the document is larger than %u bytes", AL_AUDIT_PROOF_MAX);
        return NULL;
    }
    if (al_json_depth(doc, len) > 4) {
        seterr(err, errlen, "not a proof document (nested too deep)");
        return NULL;
    }
    char *z = malloc(len + 1);
    if (!z) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(z, doc, len);
    z[len] = '\0';
    yajl_val v = yajl_tree_parse(z, ybuf, sizeof ybuf);
    free(z);
    if (!v || !YAJL_IS_OBJECT(v)) {
        seterr(err, errlen, "not a proof document (not a JSON object)");
        yajl_tree_free(v);
        return NULL;
    }
    return v;
}

static int get_u64(yajl_val o, const char *k, uint64_t *out)
{
    yajl_val v = al_json_get(o, k);
    if (!v || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) return AL_EPARSE;
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return AL_OK;
}

static int get_str(yajl_val o, const char *k, const char **p, size_t *len)
{
    yajl_val v = al_json_get(o, k);
    if (!v || !YAJL_IS_STRING(v)) return AL_EPARSE;
    *p = YAJL_GET_STRING(v);
    *len = strlen(*p);
    return AL_OK;
}

static int get_hash(yajl_val o, const char *k, uint8_t out[AL_HASH_LEN])
{
    const char *p;
    size_t len;
    if (get_str(o, k, &p, &len) != AL_OK || len != 2 * AL_HASH_LEN) return AL_EPARSE;
    return al_hash_unhex(p, len, out);
}

static int get_path(yajl_val o, uint8_t (*path)[AL_HASH_LEN], size_t *plen)
{
    yajl_val a = al_json_get(o, "proof");
    if (!a || !YAJL_IS_ARRAY(a) || a->u.array.len > AL_MERKLE_MAX_PROOF) return AL_EPARSE;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val h = a->u.array.values[i];
        const char *p = YAJL_IS_STRING(h) ? YAJL_GET_STRING(h) : NULL;
        if (!p || strlen(p) != 2 * AL_HASH_LEN ||
            al_hash_unhex(p, 2 * AL_HASH_LEN, path[i]) != AL_OK)
            return AL_EPARSE;
    }
    *plen = a->u.array.len;
    return AL_OK;
}

/* Open a note from a document with the verifiers; err says why not. */
static int doc_note(yajl_val o, const char *k, const al_verifier_t *vs, size_t nv,
                    al_checkpoint_t *cp, char *who, size_t whosz, char *err, size_t errlen)
{
    const char *p;
    size_t len;
    if (get_str(o, k, &p, &len) != AL_OK) {
        seterr(err, errlen, "not a proof document (no \"%s\")", k);
        return AL_EPARSE;
    }
    if (nv == 0) {
        seterr(err, errlen, "no verifier key to check the checkpoint with");
        return AL_EINVAL;
    }
    int rc = open_cp(p, len, vs, nv, cp, who, whosz);
    if (rc == AL_EINVAL) {
        al_buf_t names;
        al_buf_init(&names, 400);
        names_of(vs, nv, &names);
        seterr(err, errlen, "%s: not signed by %s", k, names.p ? names.p : "");
        al_buf_free(&names);
    } else if (rc != AL_OK) {
        seterr(err, errlen, "%s: not a checkpoint note", k);
    }
    return rc == AL_OK ? AL_OK : AL_EINVAL;
}

int al_audit_proof_verify(const char *doc, size_t len, const al_verifier_t *vs, size_t nv,
                          al_audit_proof_result_t *res, char *err, size_t errlen)
{
    uint8_t path[AL_MERKLE_MAX_PROOF][AL_HASH_LEN], leaf[AL_HASH_LEN], mine[AL_HASH_LEN];
    uint8_t prev[AL_HASH_LEN];
    size_t plen = 0, rlen = 0;
    uint64_t seq = 0, size = 0;
    const char *rec = NULL;
    int64_t claimed = 0;
    al_checkpoint_t cp;
    int rc = AL_EPARSE;
    memset(res, 0, sizeof *res);
    yajl_val o = doc_parse(doc, len, err, errlen);
    if (!o) return AL_EPARSE;
    if (get_u64(o, "seq", &seq) != AL_OK || get_u64(o, "tree_size", &size) != AL_OK ||
        get_str(o, "record", &rec, &rlen) != AL_OK || get_hash(o, "leaf_hash", leaf) != AL_OK ||
        get_path(o, path, &plen) != AL_OK) {
        seterr(err, errlen, "not an inclusion proof document (seq, record, leaf_hash, "
                            "tree_size, proof, checkpoint)");
        goto out;
    }
    if ((rc = doc_note(o, "checkpoint", vs, nv, &cp, res->signer, sizeof res->signer, err,
                       errlen)) != AL_OK)
        goto out;
    rc = AL_EINVAL;
    if (cp.size != size) {
        seterr(err, errlen, "tree_size %" PRIu64 " is not the checkpoint's size %" PRIu64, size,
               cp.size);
        goto out;
    }
    al_merkle_leaf_hash(rec, rlen, mine);
    if (memcmp(mine, leaf, AL_HASH_LEN) != 0) {
        seterr(err, errlen, "leaf_hash is not the record's leaf hash");
        goto out;
    }
    if (!al_json_is_canon(rec, rlen) || record_fields(rec, rlen, &claimed, prev) != AL_OK ||
        claimed <= 0 || (uint64_t)claimed != seq) {
        seterr(err, errlen, "the record is not record %" PRIu64, seq);
        goto out;
    }
    if (seq == 0 || seq > size ||
        al_merkle_inclusion_verify(seq - 1, size, leaf, (const uint8_t(*)[AL_HASH_LEN])path,
                                   plen, cp.root) != AL_OK) {
        seterr(err, errlen, "the proof does not lead to the checkpoint's root");
        goto out;
    }
    res->seq = seq;
    res->size = size;
    rc = AL_OK;
out:
    yajl_tree_free(o);
    return rc;
}

int al_audit_consistency_verify(const char *doc, size_t len, const al_verifier_t *vs, size_t nv,
                                al_audit_proof_result_t *res, char *err, size_t errlen)
{
    uint8_t path[AL_MERKLE_MAX_PROOF][AL_HASH_LEN], oroot[AL_HASH_LEN], nroot[AL_HASH_LEN];
    size_t plen = 0;
    uint64_t os = 0, ns = 0;
    al_checkpoint_t ocp, ncp;
    char who2[AL_NOTE_NAME_MAX];
    int rc = AL_EPARSE;
    memset(res, 0, sizeof *res);
    yajl_val o = doc_parse(doc, len, err, errlen);
    if (!o) return AL_EPARSE;
    if (get_u64(o, "old_size", &os) != AL_OK || get_u64(o, "new_size", &ns) != AL_OK ||
        get_hash(o, "old_root", oroot) != AL_OK || get_hash(o, "new_root", nroot) != AL_OK ||
        get_path(o, path, &plen) != AL_OK) {
        seterr(err, errlen, "not a consistency proof document (old_size, new_size, old_root, "
                            "new_root, proof, old_checkpoint, new_checkpoint)");
        goto out;
    }
    if ((rc = doc_note(o, "old_checkpoint", vs, nv, &ocp, who2, sizeof who2, err, errlen)) !=
            AL_OK ||
        (rc = doc_note(o, "new_checkpoint", vs, nv, &ncp, res->signer, sizeof res->signer, err,
                       errlen)) != AL_OK)
        goto out;
    rc = AL_EINVAL;
    if (ocp.size != os || ncp.size != ns || memcmp(ocp.root, oroot, AL_HASH_LEN) ||
        memcmp(ncp.root, nroot, AL_HASH_LEN)) {
        seterr(err, errlen, "the sizes and roots are not the checkpoints'");
        goto out;
    }
    if (strcmp(ocp.origin, ncp.origin) != 0) {
        seterr(err, errlen, "the checkpoints are of different logs ('%s', '%s')", ocp.origin,
               ncp.origin);
        goto out;
    }
    if (os == 0 || os > ns ||
        al_merkle_consistency_verify(os, ns, oroot, nroot, (const uint8_t(*)[AL_HASH_LEN])path,
                                     plen) != AL_OK) {
        seterr(err, errlen, "the proof does not show the log of size %" PRIu64
                            " is a prefix of the log of size %" PRIu64, os, ns);
        goto out;
    }
    res->old_size = os;
    res->size = ns;
    rc = AL_OK;
out:
    yajl_tree_free(o);
    return rc;
}

/* --- show ------------------------------------------------------------------ */

/* The parts of a decrypted payload as the "payload" object. */
static int put_payload(al_buf_t *b, const uint8_t *p, size_t len)
{
    static const char *const names[3] = {"received", "sent", "response"};
    static const char tags[3] = {'R', 'S', 'O'};
    char trunc[3];
    size_t nt = 0, i = 4;
    unsigned seen = 0;
    bool first = true;
    if (len < 4 || memcmp(p, "ALP1", 4) != 0) return AL_EPARSE;
    al_buf_putc(b, '{');
    while (i < len) {
        if (len - i < 6) return AL_EPARSE;
        char tag = (char)p[i];
        uint8_t flags = p[i + 1];
        uint32_t n = (uint32_t)p[i + 2] << 24 | (uint32_t)p[i + 3] << 16 |
                     (uint32_t)p[i + 4] << 8 | p[i + 5];
        i += 6;
        if (n > len - i) return AL_EPARSE;
        const char *t = memchr(tags, tag, sizeof tags);
        if (!t || (seen & (1u << (t - tags)))) return AL_EPARSE;
        seen |= 1u << (t - tags);
        if (!first) al_buf_putc(b, ',');
        first = false;
        al_buf_printf(b, "\"%s\":", names[t - tags]);
        al_buf_json_str(b, (const char *)p + i, n);
        if ((flags & 1) && nt < sizeof trunc) trunc[nt++] = tag;
        i += n;
    }
    if (nt) {
        al_buf_puts(b, first ? "\"truncated\":[" : ",\"truncated\":[");
        for (size_t k = 0; k < nt; k++) al_buf_printf(b, "%s\"%c\"", k ? "," : "", trunc[k]);
        al_buf_putc(b, ']');
    }
    al_buf_putc(b, '}');
    return AL_OK;
}

int al_audit_show(sqlite3 *db, uint64_t seq, const al_keyring_t *keyring, al_buf_t *out,
                  char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL, *kst = NULL;
    al_buf_t canon, pt;
    const char *why = NULL;
    char aad[AAD_MAX], kid[AL_SEAL_KID_MAX + 1] = "";
    uint8_t wrapped[AL_SEAL_WRAPPED_LEN];
    bool have_key = false;
    int rc = AL_EIO;
    al_buf_init(&canon, 1 << 20);
    al_buf_init(&pt, (size_t)64 << 20);
    int brc;
    bool in_tx = read_begin(db, &brc);
    if (seq == 0 || seq > (uint64_t)INT64_MAX) {
        seterr(err, errlen, "no record %" PRIu64, seq);
        rc = AL_ENOTFOUND;
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT record, payload FROM audit_log WHERE seq = ?1", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT kid, wrapped FROM audit_keys WHERE seq = ?1", -1, &kst,
                           NULL) != SQLITE_OK) {
        seterr(err, errlen, "cannot read the log: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    sqlite3_bind_int64(kst, 1, (int64_t)seq);
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) {
        seterr(err, errlen, "no record %" PRIu64, seq);
        rc = AL_ENOTFOUND;
        goto out;
    }
    if (s != SQLITE_ROW) {
        seterr(err, errlen, "cannot read the log: %s", sqlite3_errmsg(db));
        goto out;
    }
    s = sqlite3_step(kst);
    if (s == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(kst, 0);
        const void *w = sqlite3_column_blob(kst, 1);
        have_key = true;
        if (k && strlen(k) <= AL_SEAL_KID_MAX && w &&
            sqlite3_column_bytes(kst, 1) == AL_SEAL_WRAPPED_LEN) {
            snprintf(kid, sizeof kid, "%s", k);
            memcpy(wrapped, w, AL_SEAL_WRAPPED_LEN);
        } else {
            why = "the data key row is malformed";
        }
    } else if (s != SQLITE_DONE) {
        seterr(err, errlen, "cannot read the keys: %s", sqlite3_errmsg(db));
        goto out;
    }
    const char *rec = (const char *)sqlite3_column_blob(st, 0);
    size_t rlen = (size_t)sqlite3_column_bytes(st, 0);
    const void *blob = sqlite3_column_blob(st, 1);
    size_t blen = (size_t)sqlite3_column_bytes(st, 1);
    bool sealed = blob != NULL && sqlite3_column_type(st, 1) != SQLITE_NULL;

    al_buf_printf(out, "{\"seq\":%" PRIu64 ",\"record\":", seq);
    if (al_json_canon(rec ? rec : "", rlen, &canon) == AL_OK)
        al_buf_append(out, canon.p, canon.len);
    else
        al_buf_json_str(out, rec ? rec : "", rlen);
    const char *state = !sealed ? "none" : have_key ? "sealed" : "erased";
    al_buf_printf(out, ",\"payload_state\":\"%s\",\"payload\":", state);
    size_t mark = out->len;
    bool shown = false;
    if (sealed && have_key && !why) {
        size_t alen = aad_of(seq, aad);
        if (!keyring || !al_keyring_has(keyring, kid)) {
            why = "the master key that sealed it is not configured";
        } else {
            int u = al_unseal(keyring, kid, wrapped, blob, blen, aad, alen, &pt);
            if (u == AL_ETOOBIG) why = "the payload is too large to show";
            else if (u != AL_OK) why = "the payload does not decrypt (wrong key or altered bytes)";
            else if (put_payload(out, (const uint8_t *)pt.p, pt.len) != AL_OK)
                why = "the decrypted payload is malformed";
            else shown = true;
        }
    }
    if (!shown) {
        /* drop a partial payload object */
        if (out->len > mark && !out->err) {
            out->len = mark;
            out->p[mark] = '\0';
        }
        al_buf_puts(out, "null");
        if (why) {
            al_buf_puts(out, ",\"payload_error\":");
            al_buf_json_str(out, why, strlen(why));
        }
    }
    al_buf_putc(out, '}');
    rc = out->err;
    if (rc) seterr(err, errlen, "%s", al_strerror(rc));
out:
    sqlite3_finalize(st);
    sqlite3_finalize(kst);
    if (in_tx) exec(db, "COMMIT");
    if (pt.p) explicit_bzero(pt.p, pt.cap);
    al_buf_free(&pt);
    al_buf_free(&canon);
    return rc;
}

/* --- erase and purge -------------------------------------------------------- */

static int delete_keys(sqlite3 *db, const char *sql, const char *text, int64_t num,
                       uint64_t *count)
{
    sqlite3_stmt *st = NULL;
    int rc = AL_EIO;
    /* inside the caller's transaction when one is open, else our own */
    bool own = sqlite3_get_autocommit(db) != 0;
    *count = 0;
    if (own && exec(db, "BEGIN IMMEDIATE") != AL_OK) return AL_EIO;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) goto out;
    if (text) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, num);
    } else {
        sqlite3_bind_int64(st, 1, num);
    }
    if (sqlite3_step(st) != SQLITE_DONE) goto out;
    *count = (uint64_t)sqlite3_changes(db);
    sqlite3_finalize(st);
    st = NULL;
    if (own && exec(db, "COMMIT") != AL_OK) goto out;
    return AL_OK;
out:
    sqlite3_finalize(st);
    if (own) exec(db, "ROLLBACK");
    *count = 0;
    return rc;
}

int al_audit_erase(sqlite3 *db, const al_audit_erase_by_t *by, uint64_t *count)
{
    static const char *const sql[3] = {
        "DELETE FROM audit_keys WHERE seq IN (SELECT seq FROM audit_log WHERE agent = ?1 "
        "AND (?2 <= 0 OR ts_ms < ?2))",
        "DELETE FROM audit_keys WHERE seq IN (SELECT seq FROM audit_log WHERE session_id = ?1 "
        "AND (?2 <= 0 OR ts_ms < ?2))",
        "DELETE FROM audit_keys WHERE seq IN (SELECT seq FROM audit_log WHERE user_id = ?1 "
        "AND (?2 <= 0 OR ts_ms < ?2))",
    };
    const char *vals[3] = {by->agent, by->session, by->user};
    int which = -1;
    *count = 0;
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        if (which >= 0 || !*vals[i]) return AL_EINVAL;
        which = i;
    }
    if (which < 0 || by->before_ms < 0) return AL_EINVAL;
    return delete_keys(db, sql[which], vals[which], by->before_ms, count);
}

int al_audit_purge(sqlite3 *db, int64_t before_ms, uint64_t *count)
{
    *count = 0;
    if (before_ms <= 0) return AL_EINVAL;
    return delete_keys(db, "DELETE FROM audit_keys WHERE ts_ms < ?1", NULL, before_ms, count);
}
