/* json.h - the little JSON the parley command writes (one object per line). */
#ifndef PARLEY_CLI_JSON_H
#define PARLEY_CLI_JSON_H

#include "../../common/buf.h"

/* Append s as a JSON string literal (NULL as null). Escapes quote, backslash, every
 * control character and U+2028/U+2029; bytes that are not valid UTF-8 become U+FFFD, so
 * the output is always valid JSON in UTF-8. */
void json_append_string(buf *out, const char *s);
/* Append "key":value pairs: a string (or null) and a boolean. first: no leading comma. */
void json_kv_string(buf *out, const char *key, const char *value, int first);
void json_kv_bool(buf *out, const char *key, int value, int first);
void json_kv_int(buf *out, const char *key, long value, int first);

#endif
