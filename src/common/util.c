/* util.c - allocation, time, randomness and comparison helpers. */
#include "util.h"
#include "log.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    log_error("out of memory allocating %zu bytes", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_ms(void)
{
    return time_mono_us() / 1000;
}

void time_format_utc(int64_t us, char out[TIME_UTC_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, TIME_UTC_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

int time_parse_iso8601(const char *s, int64_t *us)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (!p)
        return -1;
    int64_t frac = 0;
    if (*p == 'T' || *p == ' ') {
        p = strptime(p + 1, "%H:%M", &tm);
        if (!p)
            return -1;
        if (*p == ':') {
            p = strptime(p + 1, "%S", &tm);
            if (!p)
                return -1;
            if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                    return -1;
                /* Digits past microseconds are read and ignored. */
                for (int64_t scale = 100000; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    frac += (*p - '0') * scale;
            }
        }
    }
    int64_t offset = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        for (int i = 1; i <= 5; i++)
            if (i != 3 && (p[i] < '0' || p[i] > '9'))
                return -1;
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        if (hh > 23 || mm > 59)
            return -1;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(hh * 3600 + mm * 60);
        p += 6;
    }
    if (*p)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *us = ((int64_t)t - offset) * 1000000 + frac;
    return 0;
}

int ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void random_bytes(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        log_error("the system random number generator failed");
        abort();
    }
}

void random_token(char *out, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    size_t done = 0;
    while (done < n) {
        random_bytes(raw, sizeof raw);
        for (size_t i = 0; i < sizeof raw && done < n; i++) {
            /* 248 = 4 * 62: rejecting larger values keeps the choice unbiased. */
            if (raw[i] < 248)
                out[done++] = alphabet[raw[i] % 62];
        }
    }
    out[n] = '\0';
}

void secure_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}
