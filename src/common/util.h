/* util.h - allocation, time and comparison helpers shared by every Parley component.
 *
 * Allocation failure is treated like Redis' zmalloc does: the process logs and aborts.
 * A server that runs out of memory half-way through a stanza has no meaningful way
 * to continue, and checking every small allocation would hide the real error paths. */
#ifndef PARLEY_UTIL_H
#define PARLEY_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a freshly allocated string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Microseconds since the Unix epoch (wall clock), and a monotonic clock in microseconds
 * and in milliseconds. */
int64_t time_now_us(void);
int64_t time_mono_us(void);
int64_t time_mono_ms(void);

/* Room for any time_format_utc() result. */
#define TIME_UTC_LEN 64
/* "2026-05-01T12:00:00.123456Z" (XEP-0082) from microseconds since the epoch. */
void time_format_utc(int64_t us, char out[TIME_UTC_LEN]);
/* ISO 8601 / XEP-0082 into microseconds since the epoch: DATE, or DATE then 'T' (or a
 * space) and hh:mm[:ss[.fraction]], then optionally 'Z' or +hh:mm / -hh:mm (UTC when
 * absent). Returns 0, or -1 if s is anything else. */
int time_parse_iso8601(const char *s, int64_t *us);

/* Constant-time equality of two byte strings of the same length (0 = different). */
int ct_equal(const void *a, const void *b, size_t n);

/* Fill buf with n cryptographically secure random bytes; aborts if the CSPRNG fails. */
void random_bytes(void *buf, size_t n);
/* A random token of n characters from [A-Za-z0-9], NUL-terminated (out has n+1 bytes). */
void random_token(char *out, size_t n);

/* Wipe memory that held a secret, in a way the compiler may not optimise out. */
void secure_wipe(void *p, size_t n);

/* Case-sensitive string equality that accepts NULL (two NULLs are equal). */
int str_eq(const char *a, const char *b);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
