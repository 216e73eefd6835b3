/* authlimit.h - failed-login rate limiting per account and per source address.
 * After `limit` failures within `window` seconds a key is blocked until the window that
 * began with its first failure has passed: even the right password is then refused with
 * <temporary-auth-failure/>, so an online guesser gets `limit` tries per window. */
#ifndef PARLEY_AUTHLIMIT_H
#define PARLEY_AUTHLIMIT_H

typedef struct authlimit authlimit;

authlimit *authlimit_new(int limit, int window_seconds);
void authlimit_free(authlimit *al);
int authlimit_blocked(authlimit *al, const char *key);
void authlimit_failed(authlimit *al, const char *key);
/* Forget keys whose window has passed (timer). */
void authlimit_expire(authlimit *al);

#endif
