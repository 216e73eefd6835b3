/* event.c - epoll event loop (in the spirit of Redis' ae.c, smaller). */
#include "event.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

typedef struct fd_watch {
    ev_fd_cb cb;
    void *ud;
    int mask;
    int active;
} fd_watch;

typedef struct timer {
    int interval_ms;
    int64_t next_ms;
    ev_cb cb;
    void *ud;
    struct timer *next;
} timer;

struct ev_loop {
    int epfd;
    int max_fds;
    fd_watch *fds;
    timer *timers;
    int sigfd;
    ev_signal_cb sig_cb;
    void *sig_ud;
    ev_cb before_sleep;
    void *before_sleep_ud;
    int stopped;
};

ev_loop *ev_new(int max_fds)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    ev_loop *loop = xcalloc(1, sizeof *loop);
    loop->epfd = epfd;
    loop->max_fds = max_fds;
    loop->fds = xcalloc((size_t)max_fds, sizeof *loop->fds);
    loop->sigfd = -1;
    return loop;
}

void ev_free(ev_loop *loop)
{
    if (!loop)
        return;
    timer *t = loop->timers;
    while (t) {
        timer *next = t->next;
        free(t);
        t = next;
    }
    if (loop->sigfd >= 0)
        close(loop->sigfd);
    close(loop->epfd);
    free(loop->fds);
    free(loop);
}

static uint32_t epoll_mask(int mask)
{
    return (mask & EV_READ ? EPOLLIN | EPOLLRDHUP : 0) | (mask & EV_WRITE ? EPOLLOUT : 0);
}

int ev_watch(ev_loop *loop, int fd, int mask, ev_fd_cb cb, void *ud)
{
    if (fd < 0 || fd >= loop->max_fds) {
        errno = EMFILE;
        return -1;
    }
    fd_watch *w = &loop->fds[fd];
    struct epoll_event ee = {.events = epoll_mask(mask), .data.fd = fd};
    if (epoll_ctl(loop->epfd, w->active ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ee) < 0)
        return -1;
    w->cb = cb;
    w->ud = ud;
    w->mask = mask;
    w->active = 1;
    return 0;
}

int ev_modify(ev_loop *loop, int fd, int mask)
{
    fd_watch *w = &loop->fds[fd];
    if (!w->active)
        return -1;
    if (w->mask == mask)
        return 0;
    struct epoll_event ee = {.events = epoll_mask(mask), .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ee) < 0)
        return -1;
    w->mask = mask;
    return 0;
}

void ev_unwatch(ev_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->max_fds || !loop->fds[fd].active)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(&loop->fds[fd], 0, sizeof loop->fds[fd]);
}

int ev_every(ev_loop *loop, int interval_ms, ev_cb cb, void *ud)
{
    timer *t = xcalloc(1, sizeof *t);
    t->interval_ms = interval_ms;
    t->next_ms = time_mono_ms() + interval_ms;
    t->cb = cb;
    t->ud = ud;
    t->next = loop->timers;
    loop->timers = t;
    return 0;
}

static void on_signal_fd(ev_loop *loop, int fd, void *ud, int mask)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        loop->sig_cb(loop, (int)si.ssi_signo, loop->sig_ud);
}

int ev_signals(ev_loop *loop, const int *signals, ev_signal_cb cb, void *ud)
{
    sigset_t set;
    sigemptyset(&set);
    for (const int *s = signals; *s; s++)
        sigaddset(&set, *s);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    loop->sigfd = fd;
    loop->sig_cb = cb;
    loop->sig_ud = ud;
    return ev_watch(loop, fd, EV_READ, on_signal_fd, NULL);
}

void ev_before_sleep(ev_loop *loop, ev_cb cb, void *ud)
{
    loop->before_sleep = cb;
    loop->before_sleep_ud = ud;
}

void ev_stop(ev_loop *loop)
{
    loop->stopped = 1;
}

static int next_timeout(ev_loop *loop)
{
    int64_t now = time_mono_ms();
    int64_t wait = 1000;
    for (timer *t = loop->timers; t; t = t->next) {
        int64_t left = t->next_ms - now;
        if (left < wait)
            wait = left < 0 ? 0 : left;
    }
    return (int)wait;
}

static void run_timers(ev_loop *loop)
{
    int64_t now = time_mono_ms();
    for (timer *t = loop->timers; t; t = t->next) {
        if (t->next_ms <= now) {
            t->next_ms = now + t->interval_ms;
            t->cb(loop, t->ud);
        }
    }
}

void ev_run(ev_loop *loop)
{
    struct epoll_event events[256];
    loop->stopped = 0;
    while (!loop->stopped) {
        if (loop->before_sleep)
            loop->before_sleep(loop, loop->before_sleep_ud);
        int n = epoll_wait(loop->epfd, events, (int)ARRAY_LEN(events), next_timeout(loop));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !loop->stopped; i++) {
            int fd = events[i].data.fd;
            fd_watch *w = &loop->fds[fd];
            if (!w->active)
                continue; /* closed by an earlier callback in this batch */
            int mask = 0;
            if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                mask |= EV_READ;
            if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                mask |= EV_WRITE;
            w->cb(loop, fd, w->ud, mask & (w->mask | EV_READ));
        }
        run_timers(loop);
    }
}
