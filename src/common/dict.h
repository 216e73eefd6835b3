/* dict.h - a string-keyed hash table (chaining, power-of-two buckets, grows at load 1).
 * Keys are copied; values are the caller's. */
#ifndef PARLEY_DICT_H
#define PARLEY_DICT_H

#include <stddef.h>

typedef struct dict dict;

dict *dict_new(void);
/* Free the table; free_value (may be NULL) is called on every value. */
void dict_free(dict *d, void (*free_value)(void *));
void *dict_get(const dict *d, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *dict_set(dict *d, const char *key, void *value);
/* Remove; returns the value or NULL. */
void *dict_del(dict *d, const char *key);
size_t dict_size(const dict *d);
/* Call fn for each entry; fn must not modify the table. Stops early if fn returns non-zero. */
void dict_each(const dict *d, int (*fn)(void *ud, const char *key, void *value), void *ud);

#endif
