/* registry.c - the name -> entry hash table (see registry.h).
 *
 * FNV-1a over the kind byte (when not 0) then the name picks a bucket out of
 * a power-of-two array (64 to start, doubled when the entries outnumber the
 * buckets).  A lookup takes the read lock; a miss in get retakes the write
 * lock, looks again (another thread may have inserted meanwhile) and, under
 * the cap, has the caller build the entry and links it in. */
#include "util/registry.h"
#include "util/common.h"

#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(char kind, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    if (kind) h = (h ^ (uint8_t)kind) * 0x100000001b3ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

void al_registry_init(al_registry_t *r, size_t max_entries)
{
    memset(r, 0, sizeof *r);
    AL_ASSERT(pthread_rwlock_init(&r->lock, NULL) == 0);
    r->mask = 63;
    r->max = max_entries;
    r->buckets = al_calloc(r->mask + 1, sizeof *r->buckets);
}

void al_registry_destroy(al_registry_t *r, void (*free_node)(al_reg_node_t *))
{
    for (size_t i = 0; i <= r->mask; i++) {
        al_reg_node_t *e = r->buckets[i];
        while (e) {
            al_reg_node_t *nx = e->next;
            free_node(e);
            e = nx;
        }
    }
    free(r->buckets);
    r->buckets = NULL;
    pthread_rwlock_destroy(&r->lock);
}

static al_reg_node_t *find_locked(const al_registry_t *r, uint64_t h, char kind, const char *name)
{
    for (al_reg_node_t *e = r->buckets[h & r->mask]; e; e = e->next)
        if (e->hash == h && e->kind == kind && strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void grow_locked(al_registry_t *r)
{
    size_t nb = (r->mask + 1) * 2;
    al_reg_node_t **b = al_calloc(nb, sizeof *b);
    for (size_t i = 0; i <= r->mask; i++) {
        al_reg_node_t *e = r->buckets[i];
        while (e) {
            al_reg_node_t *nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = nx;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->mask = nb - 1;
}

al_reg_node_t *al_registry_find(al_registry_t *r, char kind, const char *name)
{
    uint64_t h = key_hash(kind, name);
    pthread_rwlock_rdlock(&r->lock);
    al_reg_node_t *e = find_locked(r, h, kind, name);
    pthread_rwlock_unlock(&r->lock);
    return e;
}

al_reg_node_t *al_registry_get(al_registry_t *r, char kind, const char *name, al_reg_make_fn make,
                               void *arg)
{
    al_reg_node_t *e = al_registry_find(r, kind, name);
    if (e) return e;
    uint64_t h = key_hash(kind, name);
    pthread_rwlock_wrlock(&r->lock);
    e = find_locked(r, h, kind, name);
    if (!e && r->n < r->max) {
        e = make(kind, name, arg);
        e->hash = h;
        e->kind = kind;
        if (r->n + 1 > r->mask + 1) grow_locked(r);
        e->next = r->buckets[h & r->mask];
        r->buckets[h & r->mask] = e;
        r->n++;
    }
    pthread_rwlock_unlock(&r->lock);
    return e;
}
