/* kill.h - kill switches as an immutable, reference-counted table.
 *
 * The switches live in the store (they survive restarts); the watcher thread
 * loads them into a table whenever their version moves and hands it to every
 * worker, like the key table, so a switch takes effect on every worker within
 * about a second.  A switch matches by scope: all, agent, team, provider or
 * model (a model alias or route name). */
#ifndef AL_KILL_H
#define AL_KILL_H

#include "store/store.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct al_killtab al_killtab_t;

/* Load the active switches (NULL-safe: an empty table when there are none).
 * 0 or a store error. */
int al_killtab_load(al_store_t *s, al_killtab_t **out /* OUT */);
al_killtab_t *al_killtab_ref(al_killtab_t *t);
void al_killtab_unref(al_killtab_t *t); /* NULL ok */
size_t al_killtab_size(const al_killtab_t *t);

typedef struct al_kill_match {
    const char *scope;          /* "all" | "agent" | "team" | "provider" | "model" */
    const char *target;
    const char *reason;
    bool drain;                 /* in-flight requests may finish */
} al_kill_match_t;

/* Does a switch stop a request of this agent (team may be NULL)?  Checks
 * all, agent and team switches.  true with *m filled (pointers into t). */
bool al_killtab_agent(const al_killtab_t *t, const char *agent, const char *team,
                      al_kill_match_t *m /* OUT */);
/* Does a switch stop this provider or model alias/route (either may be NULL)? */
bool al_killtab_target(const al_killtab_t *t, const char *provider, const char *model,
                       al_kill_match_t *m /* OUT */);

#endif
