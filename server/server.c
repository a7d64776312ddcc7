/*
 * server.c - worker threads, listeners and graceful shutdown for `tallyd serve`.
 *
 * Each worker thread owns an event_base and an evhttp bound to its own
 * SO_REUSEPORT listening socket, so the kernel spreads connections across
 * workers and no lock sits on the request path. The main thread waits for
 * SIGINT/SIGTERM, stops accepting, lets in-flight requests finish (up to 10 s)
 * and then stops the loops.
 */
#include "janitor.h"
#include "ledger_svc.h"
#include "log.h"
#include "market_cache.h"
#include "market_failover.h"
#include "probe.h"
#include "reports_stream.h"
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void http_dispatch(struct evhttp_request *req, void *arg);

struct worker {
    pthread_t thread;
    struct tally_server *srv;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    void *dispatch_arg[2];
    int fd;
};

/* Open a listening socket on host:port (port 0 picks one); -1 and a log line on error. */
static int listen_on(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    snprintf(portstr, sizeof portstr, "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        log_error("server", "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0)
        goto fail;
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    if (bound_port) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    freeaddrinfo(ai);
    return fd;
fail:
    log_error("server", "cannot listen on %s:%d: %s", host, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

static int worker_init(struct worker *w, struct tally_server *srv, int fd)
{
    long hard_cap = srv->cfg.max_body_bytes * 2 + 65536;

    w->srv = srv;
    w->fd = fd;
    w->base = event_base_new();
    w->http = w->base ? evhttp_new(w->base) : NULL;
    if (!w->http)
        return -1;
    /* Bodies between the limit and the hard cap get a problem+json 413 from us;
     * libevent refuses anything larger itself (also with 413). */
    evhttp_set_max_body_size(w->http, hard_cap);
    evhttp_set_max_headers_size(w->http, 64 * 1024);
    evhttp_set_timeout(w->http, 60);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_default_content_type(w->http, "application/json");
    w->dispatch_arg[0] = srv;
    w->dispatch_arg[1] = w->base;
    evhttp_set_gencb(w->http, http_dispatch, w->dispatch_arg);
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    return w->bound ? 0 : -1;
}

static void flush_access_log(evutil_socket_t fd, short what, void *arg)
{
    log_access_flush();
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct timeval every = {0, 50000};
    struct event *flush = event_new(w->base, -1, EV_PERSIST, flush_access_log, NULL);

    log_access_buffered(flush != NULL);
    if (flush)
        event_add(flush, &every);
    event_base_dispatch(w->base);
    if (flush)
        event_free(flush);
    log_access_flush();
    return NULL;
}

static void worker_stop_accepting(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound); /* closes the fd */
        w->bound = NULL;
    }
}

struct shutdown_state {
    struct tally_server *srv;
    struct worker *workers;
    int nworkers;
    struct event_base *main_base;
    struct event *drain_timer;
    int draining_ticks;
};

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct shutdown_state *s = arg;
    int inflight = __atomic_load_n(&s->srv->inflight, __ATOMIC_RELAXED);

    if (inflight > 0 && ++s->draining_ticks < 200) {
        struct timeval tv = {0, 50000};
        evtimer_add(s->drain_timer, &tv);
        return;
    }
    if (inflight > 0)
        log_warn("server", "stopping with %d requests still in flight", inflight);
    for (int i = 0; i < s->nworkers; i++)
        event_base_loopexit(s->workers[i].base, NULL);
    event_base_loopexit(s->main_base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct shutdown_state *s = arg;
    struct timeval zero = {0, 0};

    if (s->drain_timer && evtimer_pending(s->drain_timer, NULL))
        return;
    log_info("server", "received %s; draining in-flight requests",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    reports_stream_shutdown(); /* streaming reports end now, cut off */
    for (int i = 0; i < s->nworkers; i++)
        event_base_once(s->workers[i].base, -1, EV_TIMEOUT, worker_stop_accepting, &s->workers[i],
                        &zero);
    evtimer_add(s->drain_timer, &zero);
}

static const char *probe_env(const char *name)
{
    return getenv(name);
}

/* The probe engine on the main loop (TALLY_PROBE_*), probing published offers'
 * endpoints (market_cache.h). 0, or -1 after a log line on a bad setting. */
static int probes_start(struct tally_server *srv, struct event_base *base)
{
    probe_config pc;
    char err[256];

    probe_config_default(&pc);
    if (probe_config_from_env(&pc, probe_env, err, sizeof err) != 0 ||
        !(srv->probes = probe_engine_new(base, &pc, err, sizeof err))) {
        log_error("server", "cannot start the probe engine: %s", err);
        return -1;
    }
    if (srv->market)
        market_cache_attach_probes(srv->market, srv->probes, base);
    market_failover_attach(srv, base); /* orders move off offers that go down */
    return 0;
}

static void workers_free(struct worker *ws, int n)
{
    for (int i = 0; i < n; i++) {
        if (ws[i].http)
            evhttp_free(ws[i].http);
        else if (ws[i].fd >= 0)
            close(ws[i].fd);
        if (ws[i].base)
            event_base_free(ws[i].base);
    }
    free(ws);
}

int server_run(struct tally_server *srv)
{
    int n = srv->cfg.threads, port = srv->cfg.listen_port, started = 0, rc = 1;
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    struct shutdown_state st = {.srv = srv, .workers = ws, .nworkers = n};
    struct event *sigint = NULL, *sigterm = NULL;
    janitor *jan = NULL;

    if (!ws)
        return 1;
    for (int i = 0; i < n; i++)
        ws[i].fd = -1;
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < n; i++) {
        int fd = listen_on(srv->cfg.listen_host, port, i == 0 ? &port : NULL);
        if (fd < 0 || worker_init(&ws[i], srv, fd) != 0) {
            if (fd >= 0 && !ws[i].bound)
                close(fd);
            goto out;
        }
    }
    st.main_base = event_base_new();
    if (!st.main_base)
        goto out;
    st.drain_timer = evtimer_new(st.main_base, drain_tick, &st);
    sigint = evsignal_new(st.main_base, SIGINT, on_signal, &st);
    sigterm = evsignal_new(st.main_base, SIGTERM, on_signal, &st);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    jan = janitor_start(srv, st.main_base, 1000);
    if (probes_start(srv, st.main_base) != 0)
        goto out;
    for (; started < n; started++)
        if (pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]) != 0)
            break;
    if (started == n) {
        log_info("server", "listening on %s:%d with %d threads and %d database connections",
                 srv->cfg.listen_host, port, n, srv->cfg.db_pool_size);
        event_base_dispatch(st.main_base);
        rc = 0;
    } else {
        for (int i = 0; i < started; i++)
            event_base_loopexit(ws[i].base, NULL);
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    /* Finish queued database work while the loops' bases still exist. */
    db_pool_stop(srv->pool);
    srv->pool = NULL;
    ledger_svc_stop_writer(srv->ledger); /* the same for ops queued in the ledger writer */
    /* Deliver the completions of work that finished during the drain. */
    event_base_loop(st.main_base, EVLOOP_NONBLOCK);
    for (int i = 0; i < started; i++)
        event_base_loop(ws[i].base, EVLOOP_NONBLOCK);
out:
    if (srv->market)
        market_cache_attach_probes(srv->market, NULL, NULL);
    probe_engine_free(srv->probes);
    srv->probes = NULL;
    janitor_stop(jan);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (st.drain_timer)
        event_free(st.drain_timer);
    if (st.main_base)
        event_base_free(st.main_base);
    workers_free(ws, n);
    return rc;
}
