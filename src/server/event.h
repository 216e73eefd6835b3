/* event.h - the event loop: one thread, epoll, level-triggered fd events, periodic
 * timers, signals through signalfd, and a before-sleep hook where queued output is
 * flushed (so several stanzas for one peer leave in one TLS record). */
#ifndef PARLEY_EVENT_H
#define PARLEY_EVENT_H

#include <stdint.h>

#define EV_READ 1
#define EV_WRITE 2

typedef struct ev_loop ev_loop;
typedef void (*ev_fd_cb)(ev_loop *loop, int fd, void *ud, int mask);
typedef void (*ev_cb)(ev_loop *loop, void *ud);
typedef void (*ev_signal_cb)(ev_loop *loop, int signo, void *ud);

/* max_fds bounds the fd numbers the loop can watch. NULL on failure (errno set). */
ev_loop *ev_new(int max_fds);
void ev_free(ev_loop *loop);
/* Watch fd for the events in mask (replacing any previous mask). Returns 0 or -1. */
int ev_watch(ev_loop *loop, int fd, int mask, ev_fd_cb cb, void *ud);
/* Change the mask of a watched fd (0 = keep watching nothing). Returns 0 or -1. */
int ev_modify(ev_loop *loop, int fd, int mask);
void ev_unwatch(ev_loop *loop, int fd);
/* Call cb every interval_ms. Returns 0 or -1. */
int ev_every(ev_loop *loop, int interval_ms, ev_cb cb, void *ud);
/* Deliver these signals (0-terminated list) to cb instead of their default action. */
int ev_signals(ev_loop *loop, const int *signals, ev_signal_cb cb, void *ud);
/* Called once per iteration before waiting for events. */
void ev_before_sleep(ev_loop *loop, ev_cb cb, void *ud);
/* Run until ev_stop is called. */
void ev_run(ev_loop *loop);
void ev_stop(ev_loop *loop);

#endif
