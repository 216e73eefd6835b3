/* tls_pool.c - TLS handshakes on worker threads (see tls_pool.h).
 *
 * Each worker has its own epoll set, an eventfd to be woken by, and an inbox of new
 * jobs. A job lives in exactly one place at a time: a worker's inbox, a worker's active
 * list (its fd in that worker's epoll set), or the pool's done queue; the mutexes that
 * move it between them also publish the SSL object's state to the next thread. Jobs go
 * to the worker with the fewest handshakes in progress, so a few stalled clients on one
 * worker do not hold back the others (a worker multiplexes all of its handshakes
 * anyway). */
#include "tls_pool.h"
#include "../common/tls.h"
#include "../common/util.h"

#include <openssl/err.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct worker worker;

struct tls_pool_job {
    SSL *ssl;
    int fd;
    tls_pool_done_fn done;
    void *ud;
    worker *w;
    atomic_int cancel;
    tls_pool_result result;
    char err[256];
    tls_pool_job *next; /* inbox or done queue */
    tls_pool_job *prev_active, *next_active; /* the worker's own list */
};

struct worker {
    tls_pool *pool;
    pthread_t thread;
    int started;
    int epfd;
    int wakefd;
    pthread_mutex_t lock; /* inbox */
    tls_pool_job *inbox;
    tls_pool_job *active; /* only the worker thread touches this list */
    atomic_int load;      /* handshakes given to this worker and not yet handed back */
    atomic_int cancels;   /* cancel requests since the worker last looked */
    atomic_int stop;
};

struct tls_pool {
    ev_loop *loop;
    int donefd; /* eventfd the event loop watches */
    pthread_mutex_t lock; /* done queue */
    tls_pool_job *done;
    int nworkers;
    worker *workers;
};

static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* only fails if the counter is saturated, and then a wakeup is pending */
}

static void drain_eventfd(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
}

/* ---------------------------------------------------------------- worker side */

/* The job leaves the worker: off its epoll set and list, onto the done queue. */
static void finish(worker *w, tls_pool_job *j, tls_pool_result result)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, j->fd, NULL);
    if (j->prev_active)
        j->prev_active->next_active = j->next_active;
    else
        w->active = j->next_active;
    if (j->next_active)
        j->next_active->prev_active = j->prev_active;
    j->result = result;
    tls_pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    int was_empty = p->done == NULL;
    j->next = p->done;
    p->done = j;
    pthread_mutex_unlock(&p->lock);
    if (was_empty)
        wake(p->donefd);
}

static void step(worker *w, tls_pool_job *j)
{
    if (atomic_load(&j->cancel)) {
        finish(w, j, TLS_POOL_CANCELLED);
        return;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(j->ssl);
    if (r == 1) {
        finish(w, j, TLS_POOL_DONE);
        return;
    }
    int e = SSL_get_error(j->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        struct epoll_event ev = {.events = e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN,
                                 .data.ptr = j};
        if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, j->fd, &ev) == 0)
            return;
        snprintf(j->err, sizeof j->err, "handshake thread cannot watch the socket: %s",
                 strerror(errno));
    } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(j->err, sizeof j->err, "peer closed the connection during the handshake");
    } else {
        /* The error queue is per thread: it has to be read here. */
        tls_last_error(j->err, sizeof j->err);
    }
    finish(w, j, TLS_POOL_FAILED);
}

static void take_inbox(worker *w)
{
    pthread_mutex_lock(&w->lock);
    tls_pool_job *lifo = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->lock);
    /* Oldest first: in a storm the connections that waited longest start first. */
    tls_pool_job *j = NULL;
    while (lifo) {
        tls_pool_job *next = lifo->next;
        lifo->next = j;
        j = lifo;
        lifo = next;
    }
    while (j) {
        tls_pool_job *next = j->next;
        j->next = NULL;
        j->prev_active = NULL;
        j->next_active = w->active;
        if (w->active)
            w->active->prev_active = j;
        w->active = j;
        /* Registered for input first; step() then says what the handshake waits for
         * (the ClientHello may well be here already). */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = j};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, j->fd, &ev) < 0) {
            snprintf(j->err, sizeof j->err, "handshake thread cannot watch the socket: %s",
                     strerror(errno));
            finish(w, j, TLS_POOL_FAILED);
        } else {
            step(w, j);
        }
        j = next;
    }
}

static void take_cancels(worker *w)
{
    if (atomic_exchange(&w->cancels, 0) == 0)
        return;
    tls_pool_job *j = w->active;
    while (j) {
        tls_pool_job *next = j->next_active;
        if (atomic_load(&j->cancel))
            finish(w, j, TLS_POOL_CANCELLED);
        j = next;
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[64];
    while (!atomic_load(&w->stop)) {
        int n = epoll_wait(w->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        int woken = 0;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                woken = 1;
                continue;
            }
            step(w, evs[i].data.ptr);
        }
        if (woken) {
            drain_eventfd(w->wakefd);
            take_inbox(w);
            take_cancels(w);
        }
    }
    /* Stopping: what is still here goes back cancelled. */
    take_inbox(w);
    while (w->active)
        finish(w, w->active, TLS_POOL_CANCELLED);
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

/* ---------------------------------------------------------------- event loop side */

static void deliver(tls_pool *p)
{
    pthread_mutex_lock(&p->lock);
    tls_pool_job *j = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->lock);
    /* The queue is last-in first-out; hand results over in the order they came. */
    tls_pool_job *fifo = NULL;
    while (j) {
        tls_pool_job *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    while (fifo) {
        tls_pool_job *next = fifo->next;
        atomic_fetch_sub(&fifo->w->load, 1);
        fifo->done(fifo->ud, fifo->result, fifo->err);
        free(fifo);
        fifo = next;
    }
}

static void on_done(ev_loop *loop, int fd, void *ud, int mask)
{
    (void)loop, (void)mask;
    drain_eventfd(fd);
    deliver(ud);
}

int tls_pool_threads(const tls_pool *p) { return p ? p->nworkers : 0; }

tls_pool *tls_pool_new(ev_loop *loop, int nthreads)
{
    if (nthreads < 1)
        return NULL;
    tls_pool *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->donefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&p->lock, NULL);
    p->workers = xcalloc((size_t)nthreads, sizeof *p->workers);
    if (p->donefd < 0 || ev_watch(loop, p->donefd, EV_READ, on_done, p) < 0)
        goto fail;
    for (int i = 0; i < nthreads; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&w->lock, NULL);
        p->nworkers++;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (w->epfd < 0 || w->wakefd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) < 0)
            goto fail;
        /* Signals are the event loop's (signalfd): a worker must never take one. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0)
            goto fail;
        w->started = 1;
    }
    return p;
fail:
    tls_pool_free(p);
    return NULL;
}

void tls_pool_free(tls_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nworkers; i++) {
        worker *w = &p->workers[i];
        if (!w->started)
            continue;
        atomic_store(&w->stop, 1);
        wake(w->wakefd);
        pthread_join(w->thread, NULL);
    }
    deliver(p); /* every job is on the done queue now */
    for (int i = 0; i < p->nworkers; i++) {
        worker *w = &p->workers[i];
        if (w->epfd >= 0)
            close(w->epfd);
        if (w->wakefd >= 0)
            close(w->wakefd);
        pthread_mutex_destroy(&w->lock);
    }
    if (p->donefd >= 0) {
        ev_unwatch(p->loop, p->donefd);
        close(p->donefd);
    }
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

tls_pool_job *tls_pool_submit(tls_pool *p, SSL *ssl, int fd, tls_pool_done_fn done, void *ud)
{
    if (!p || p->nworkers < 1)
        return NULL;
    worker *w = &p->workers[0];
    for (int i = 1; i < p->nworkers; i++)
        if (atomic_load(&p->workers[i].load) < atomic_load(&w->load))
            w = &p->workers[i];
    tls_pool_job *j = xcalloc(1, sizeof *j);
    j->ssl = ssl;
    j->fd = fd;
    j->done = done;
    j->ud = ud;
    j->w = w;
    atomic_fetch_add(&w->load, 1);
    pthread_mutex_lock(&w->lock);
    int was_empty = w->inbox == NULL;
    j->next = w->inbox;
    w->inbox = j;
    pthread_mutex_unlock(&w->lock);
    if (was_empty)
        wake(w->wakefd);
    return j;
}

void tls_pool_cancel(tls_pool_job *job)
{
    if (!job || atomic_exchange(&job->cancel, 1))
        return;
    atomic_fetch_add(&job->w->cancels, 1);
    wake(job->w->wakefd);
}
