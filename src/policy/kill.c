/* kill.c - the kill-switch table of kill.h: an immutable, reference-counted
 * snapshot of the active switches.
 *
 * The watcher loads the rows with al_store_kill_each, copies them into one
 * array (forcing every string NUL-terminated, parsing the scope once into
 * an enum), and hands the table to the workers; after that nothing writes
 * to it, so lookups take no lock and the table lives as long as its last
 * reference (atomic count, as the key table).  Switches are few (an
 * operator sets them by hand), so a lookup is a linear scan comparing exact
 * names: "all" matches every request, agent/team switches are checked by
 * al_killtab_agent, provider/model switches by al_killtab_target.  When
 * several switches match, a non-draining one wins over a draining one (the
 * stricter answer decides whether in-flight streams end), then the oldest
 * (the store's order).  Rows with an unknown scope, or with an empty target
 * for a scope other than "all", cannot match anything and are left out with
 * a warning.  A table with no rows is valid (size 0); so is a NULL table for
 * the lookups (nothing killed).
 *
 * Test hook: al__killtab_from_rows(rows, n) builds a table from rows without
 * a store (one reference).  It is not in kill.h; tests declare it. */
#include "policy/kill.h"
#include "util/common.h"
#include "util/log.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum kill_scope { SCOPE_ALL, SCOPE_AGENT, SCOPE_TEAM, SCOPE_PROVIDER, SCOPE_MODEL };

typedef struct kill_entry {
    enum kill_scope scope;
    al_kill_row_t row;          /* strings NUL-terminated */
} kill_entry_t;

struct al_killtab {
    atomic_int refs;
    size_t n;
    kill_entry_t *e;
};

al_killtab_t *al__killtab_from_rows(const al_kill_row_t *rows, size_t n);

static bool parse_scope(const char *s, enum kill_scope *out)
{
    static const struct {
        const char *name;
        enum kill_scope scope;
    } names[] = {{"all", SCOPE_ALL},
                 {"agent", SCOPE_AGENT},
                 {"team", SCOPE_TEAM},
                 {"provider", SCOPE_PROVIDER},
                 {"model", SCOPE_MODEL}};
    for (size_t i = 0; i < AL_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].scope;
            return true;
        }
    return false;
}

al_killtab_t *al__killtab_from_rows(const al_kill_row_t *rows, size_t n)
{
    al_killtab_t *t = al_calloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    t->e = al_calloc(n ? n : 1, sizeof *t->e);
    for (size_t i = 0; i < n; i++) {
        kill_entry_t *e = &t->e[t->n];
        e->row = rows[i];
        al_kill_row_t *r = &e->row;
        r->scope[sizeof r->scope - 1] = '\0';
        r->target[sizeof r->target - 1] = '\0';
        r->reason[sizeof r->reason - 1] = '\0';
        r->created_by[sizeof r->created_by - 1] = '\0';
        if (!parse_scope(r->scope, &e->scope)) {
            al_warn("kill: switch with unknown scope \"%s\" ignored", r->scope);
            continue;
        }
        if (e->scope != SCOPE_ALL && r->target[0] == '\0') {
            al_warn("kill: %s switch without a target ignored", r->scope);
            continue;
        }
        t->n++;
    }
    return t;
}

al_killtab_t *al_killtab_ref(al_killtab_t *t)
{
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void al_killtab_unref(al_killtab_t *t)
{
    if (!t) return;
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    free(t->e);
    free(t);
}

size_t al_killtab_size(const al_killtab_t *t)
{
    return t ? t->n : 0;
}

typedef struct load_ctx {
    al_kill_row_t *rows;
    size_t n, cap;
} load_ctx_t;

static int load_row(void *ud, const al_kill_row_t *row)
{
    load_ctx_t *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->rows = al_realloc(c->rows, c->cap * sizeof *c->rows);
    }
    c->rows[c->n++] = *row;
    return 0;
}

int al_killtab_load(al_store_t *s, al_killtab_t **out)
{
    load_ctx_t c = {0};
    int rc = AL_OK;
    *out = NULL;
    /* No store (none configured): nothing can be switched off. */
    if (s) rc = al_store_kill_each(s, load_row, &c);
    if (rc == AL_OK) *out = al__killtab_from_rows(c.rows, c.n);
    free(c.rows);
    return rc;
}

/* Keep the better of two matches: non-draining first, then the older (the
 * earlier entry, as the scan goes oldest first). */
static void consider(const kill_entry_t *e, const kill_entry_t **best)
{
    if (!*best || ((*best)->row.drain && !e->row.drain)) *best = e;
}

static bool name_is(const kill_entry_t *e, const char *name)
{
    return name && strcmp(e->row.target, name) == 0;
}

static bool report(const kill_entry_t *best, al_kill_match_t *m)
{
    if (!best) return false;
    if (m) {
        m->scope = best->row.scope;
        m->target = best->row.target;
        m->reason = best->row.reason;
        m->drain = best->row.drain;
    }
    return true;
}

bool al_killtab_agent(const al_killtab_t *t, const char *agent, const char *team,
                      al_kill_match_t *m)
{
    const kill_entry_t *best = NULL;
    for (size_t i = 0; t && i < t->n; i++) {
        const kill_entry_t *e = &t->e[i];
        if (e->scope == SCOPE_ALL || (e->scope == SCOPE_AGENT && name_is(e, agent)) ||
            (e->scope == SCOPE_TEAM && name_is(e, team)))
            consider(e, &best);
    }
    return report(best, m);
}

bool al_killtab_target(const al_killtab_t *t, const char *provider, const char *model,
                       al_kill_match_t *m)
{
    const kill_entry_t *best = NULL;
    for (size_t i = 0; t && i < t->n; i++) {
        const kill_entry_t *e = &t->e[i];
        if (e->scope == SCOPE_ALL || (e->scope == SCOPE_PROVIDER && name_is(e, provider)) ||
            (e->scope == SCOPE_MODEL && name_is(e, model)))
            consider(e, &best);
    }
    return report(best, m);
}
