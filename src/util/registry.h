/* registry.h - a name -> entry table shared by the rate limiter and the
 * budget ledger: a chained hash table under a rwlock that is held only to
 * find an entry (read) or insert one (write), capped at a number of entries.
 *
 * Entries are the caller's structs with an al_reg_node_t as their FIRST
 * member; the caller allocates them (in the make callback) and they live
 * until al_registry_destroy, so a pointer taken from the registry stays valid
 * with no lock held.  A key is a kind byte (0 when the caller has one kind)
 * and a NUL-terminated name; the node's name points at the entry's own copy. */
#ifndef AL_REGISTRY_H
#define AL_REGISTRY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct al_reg_node {
    struct al_reg_node *next;   /* hash chain (registry lock) */
    uint64_t hash;
    char kind;
    const char *name;           /* the entry's copy, set by make */
} al_reg_node_t;

typedef struct al_registry {
    pthread_rwlock_t lock;
    al_reg_node_t **buckets;
    size_t mask;                /* nbuckets - 1 */
    size_t n;
    size_t max;                 /* cap on n */
} al_registry_t;

/* Builds a new entry for (kind, name) and returns its node with name set
 * (hash, kind and next are set by the registry).  Called under the write
 * lock; must not fail (al_calloc aborts). */
typedef al_reg_node_t *(*al_reg_make_fn)(char kind, const char *name, void *arg);

void al_registry_init(al_registry_t *r, size_t max_entries);
/* Frees every entry with free_node, then the table. */
void al_registry_destroy(al_registry_t *r, void (*free_node)(al_reg_node_t *));
/* The entry for (kind, name), or NULL. */
al_reg_node_t *al_registry_find(al_registry_t *r, char kind, const char *name);
/* The entry for (kind, name), created with make when missing; NULL when it is
 * missing and the registry holds max_entries already. */
al_reg_node_t *al_registry_get(al_registry_t *r, char kind, const char *name, al_reg_make_fn make,
                               void *arg);

#endif
