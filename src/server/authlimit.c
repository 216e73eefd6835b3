/* authlimit.c - fixed-window failure counters keyed by "user:JID" or "addr:IP". */
#include "authlimit.h"
#include "../common/dict.h"
#include "../common/util.h"

#include <stdlib.h>

typedef struct window {
    int failures;
    int64_t started_ms;
} window;

struct authlimit {
    dict *keys;
    int limit;
    int64_t window_ms;
};

authlimit *authlimit_new(int limit, int window_seconds)
{
    authlimit *al = xcalloc(1, sizeof *al);
    al->keys = dict_new();
    al->limit = limit;
    al->window_ms = (int64_t)window_seconds * 1000;
    return al;
}

void authlimit_free(authlimit *al)
{
    if (!al)
        return;
    dict_free(al->keys, free);
    free(al);
}

static window *current(authlimit *al, const char *key)
{
    window *w = dict_get(al->keys, key);
    if (w && time_mono_ms() - w->started_ms >= al->window_ms) {
        free(dict_del(al->keys, key));
        w = NULL;
    }
    return w;
}

int authlimit_blocked(authlimit *al, const char *key)
{
    window *w = current(al, key);
    return al->limit > 0 && w && w->failures >= al->limit;
}

void authlimit_failed(authlimit *al, const char *key)
{
    window *w = current(al, key);
    if (!w) {
        w = xcalloc(1, sizeof *w);
        w->started_ms = time_mono_ms();
        dict_set(al->keys, key, w);
    }
    w->failures++;
}

typedef struct expire_ctx {
    authlimit *al;
    char **stale;
    size_t n, cap;
} expire_ctx;

static int collect_stale(void *ud, const char *key, void *value)
{
    expire_ctx *ctx = ud;
    window *w = value;
    if (time_mono_ms() - w->started_ms >= ctx->al->window_ms) {
        if (ctx->n == ctx->cap) {
            ctx->cap = ctx->cap ? ctx->cap * 2 : 16;
            ctx->stale = xrealloc(ctx->stale, ctx->cap * sizeof *ctx->stale);
        }
        ctx->stale[ctx->n++] = xstrdup(key);
    }
    return 0;
}

void authlimit_expire(authlimit *al)
{
    expire_ctx ctx = {.al = al};
    dict_each(al->keys, collect_stale, &ctx);
    for (size_t i = 0; i < ctx.n; i++) {
        free(dict_del(al->keys, ctx.stale[i]));
        free(ctx.stale[i]);
    }
    free(ctx.stale);
}
