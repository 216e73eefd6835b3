/* buf.h - a growable byte buffer, the one way Parley accumulates bytes.
 *
 * The buffer itself is unbounded; callers that hold peer-controlled data enforce their
 * own limit by checking len before appending (see conn.c's output bound). */
#ifndef PARLEY_BUF_H
#define PARLEY_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data; /* always NUL-terminated when cap > 0 */
    size_t len;
    size_t cap;
} buf;

void buf_init(buf *b);
void buf_free(buf *b);
void buf_reset(buf *b);
void buf_append(buf *b, const void *data, size_t len);
void buf_append_str(buf *b, const char *s);
void buf_appendf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append text escaped for XML character data (attr=0) or a quoted attribute (attr=1). */
void buf_append_xml_escaped(buf *b, const char *s, size_t len, int attr);
/* Drop the first n bytes. */
void buf_consume(buf *b, size_t n);
/* Give up the storage if the buffer is empty (keeps idle connections small). */
void buf_shrink(buf *b);
/* Take ownership of the contents as a NUL-terminated string; the buffer is left empty. */
char *buf_steal(buf *b);

#endif
