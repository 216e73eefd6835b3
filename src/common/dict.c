/* dict.c - string-keyed hash table with chaining (FNV-1a hashing, randomised seed so a
 * peer cannot choose JIDs that collide). */
#include "dict.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *key;
    void *value;
    struct entry *next;
} entry;

struct dict {
    entry **buckets;
    size_t nbuckets;
    size_t size;
    uint64_t seed;
};

static uint64_t hash_key(const dict *d, const char *key)
{
    uint64_t h = 1469598103934665603ULL ^ d->seed;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

dict *dict_new(void)
{
    dict *d = xcalloc(1, sizeof *d);
    d->nbuckets = 16;
    d->buckets = xcalloc(d->nbuckets, sizeof *d->buckets);
    random_bytes(&d->seed, sizeof d->seed);
    return d;
}

void dict_free(dict *d, void (*free_value)(void *))
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nbuckets; i++) {
        entry *e = d->buckets[i];
        while (e) {
            entry *next = e->next;
            if (free_value)
                free_value(e->value);
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(d->buckets);
    free(d);
}

static entry **find_slot(const dict *d, const char *key)
{
    entry **slot = &d->buckets[hash_key(d, key) & (d->nbuckets - 1)];
    while (*slot && strcmp((*slot)->key, key) != 0)
        slot = &(*slot)->next;
    return slot;
}

void *dict_get(const dict *d, const char *key)
{
    entry *e = *find_slot(d, key);
    return e ? e->value : NULL;
}

static void grow(dict *d)
{
    size_t n = d->nbuckets * 2;
    entry **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < d->nbuckets; i++) {
        entry *e = d->buckets[i];
        while (e) {
            entry *next = e->next;
            size_t idx = hash_key(d, e->key) & (n - 1);
            e->next = b[idx];
            b[idx] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = n;
}

void *dict_set(dict *d, const char *key, void *value)
{
    entry **slot = find_slot(d, key);
    if (*slot) {
        void *old = (*slot)->value;
        (*slot)->value = value;
        return old;
    }
    entry *e = xmalloc(sizeof *e);
    e->key = xstrdup(key);
    e->value = value;
    e->next = NULL;
    *slot = e;
    if (++d->size > d->nbuckets)
        grow(d);
    return NULL;
}

void *dict_del(dict *d, const char *key)
{
    entry **slot = find_slot(d, key);
    entry *e = *slot;
    if (!e)
        return NULL;
    void *value = e->value;
    *slot = e->next;
    free(e->key);
    free(e);
    d->size--;
    return value;
}

size_t dict_size(const dict *d)
{
    return d->size;
}

void dict_each(const dict *d, int (*fn)(void *ud, const char *key, void *value), void *ud)
{
    for (size_t i = 0; i < d->nbuckets; i++)
        for (entry *e = d->buckets[i]; e; e = e->next)
            if (fn(ud, e->key, e->value))
                return;
}
