/* omemo_test.h - helpers shared by the OMEMO unit tests (hex vectors). */
#ifndef PARLEY_TEST_OMEMO_H
#define PARLEY_TEST_OMEMO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Decode a hex string into out (which holds at least strlen(hex) / 2 bytes). */
static inline size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + (size_t)j];
            v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        out[i] = (uint8_t)v;
    }
    return n;
}

#endif
