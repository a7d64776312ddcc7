/*
 * probe.c - the probe engine (see probe.h): one timer and one connect event
 * per endpoint on the caller's event loop.
 *
 * Per endpoint the state machine is IDLE (timer armed) -> CONNECTING (socket
 * open, write event with timeout armed) -> IDLE. Only the loop thread opens
 * sockets, arms events and frees endpoints; other threads change the table
 * under the mutex and poke the endpoint's timer with event_active, and the
 * loop thread applies the change (a removed endpoint is freed by its own
 * timer callback). The invariant: an endpoint's events are only added,
 * deleted or freed on the loop thread, except event_active.
 */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct probe_ep {
    probe_state st;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct event *timer;      /* next probe; also the "apply changes" poke */
    struct event *conn;       /* connect completion, with the timeout */
    int fd;                   /* -1 when idle */
    struct timespec t0;       /* connect start (monotonic) */
    int removed;              /* set by remove(); the loop frees it */
    int reset;                /* set by set() with a new endpoint; the loop restarts it */
    struct probe_engine *eng; /* back pointer for the callbacks */
} probe_ep;

struct probe_engine {
    struct event_base *base;
    probe_config cfg;
    pthread_mutex_t mu;
    probe_ep **eps;
    size_t n, cap;
    uint64_t rng;
    probe_change_fn on_change;
    void *on_change_arg;
};

static void ep_timer_cb(evutil_socket_t fd, short what, void *arg);
static void ep_conn_cb(evutil_socket_t fd, short what, void *arg);

static void put(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!buf || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

const char *probe_status_name(probe_status s)
{
    return s == PROBE_UP ? "up" : s == PROBE_DOWN ? "down" : "unknown";
}

/* ---- configuration -------------------------------------------------------- */

void probe_config_default(probe_config *cfg)
{
    cfg->interval_ms = 30000;
    cfg->jitter_pct = 10;
    cfg->timeout_ms = 2000;
    cfg->failures_down = 3;
    cfg->retry_ms = 2000;
    cfg->ewma_weight_ppm = 125000;
}

int probe_config_check(const probe_config *c, char *err, size_t errlen)
{
    const char *bad = c->interval_ms < 100 || c->interval_ms > 86400000        ? "interval_ms"
                      : c->jitter_pct < 0 || c->jitter_pct > 50                ? "jitter_pct"
                      : c->timeout_ms < 10 || c->timeout_ms > 60000            ? "timeout_ms"
                      : c->failures_down < 1 || c->failures_down > 100         ? "failures_down"
                      : c->retry_ms < 10                                       ? "retry_ms"
                      : c->ewma_weight_ppm < 1 || c->ewma_weight_ppm > 1000000 ? "ewma_weight_ppm"
                                                                               : NULL;
    if (bad) {
        put(err, errlen, "probe config: %s out of range", bad);
        return -1;
    }
    return 0;
}

static int env_int(config_getenv_fn get, const char *name, long lo, long hi, int *out, char *err,
                   size_t errlen)
{
    const char *v = get(name);
    char *end;
    long x;
    if (!v || !*v)
        return 0;
    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        put(err, errlen, "%s: must be an integer between %ld and %ld, got '%s'", name, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int probe_config_from_env(probe_config *cfg, config_getenv_fn get, char *err, size_t errlen)
{
    if (env_int(get, "TALLY_PROBE_INTERVAL_MS", 100, 86400000, &cfg->interval_ms, err, errlen) ||
        env_int(get, "TALLY_PROBE_FAILURES", 1, 100, &cfg->failures_down, err, errlen) ||
        env_int(get, "TALLY_PROBE_TIMEOUT_MS", 10, 60000, &cfg->timeout_ms, err, errlen))
        return -1;
    return 0;
}

/* ---- endpoints ------------------------------------------------------------ */

int probe_endpoint_parse(const char *s, void *out, size_t cap, unsigned *outlen, char *err,
                         size_t errlen)
{
    char host[PROBE_ENDPOINT_MAX + 1], *end;
    const char *colon, *h = s;
    size_t hl;
    long port;

    if (!s || !*s || strlen(s) > PROBE_ENDPOINT_MAX || cap < sizeof(struct sockaddr_in6))
        goto bad;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            goto bad;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            goto bad;
        hl = (size_t)(colon - s);
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || errno || *end || port < 1 || port > 65535)
        goto bad;
    memset(out, 0, cap);
    if (*s != '[') {
        struct sockaddr_in *a = out;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            goto bad;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *outlen = sizeof *a;
    } else {
        struct sockaddr_in6 *a = out;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            goto bad;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *outlen = sizeof *a;
    }
    return 0;
bad:
    put(err, errlen,
        "endpoint: must be a numeric IPv4:port or [IPv6]:port (names are not resolved), got '%s'",
        s ? s : "");
    return -1;
}

static int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: jitter only, not security. Called with the mutex held. */
static uint64_t eng_rand(probe_engine *eng)
{
    uint64_t x = eng->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    eng->rng = x;
    return x * UINT64_C(2685821657736338717);
}

/* Delay before the next probe, given the last result. Mutex held. */
static int next_delay_ms(probe_engine *eng, const probe_ep *ep)
{
    const probe_config *c = &eng->cfg;
    int base = c->interval_ms, span;
    if (ep->st.consecutive_failures > 0 && ep->st.status != PROBE_DOWN)
        return c->retry_ms < c->interval_ms ? c->retry_ms : c->interval_ms;
    span = (int)((int64_t)base * c->jitter_pct / 100);
    if (span == 0)
        return base;
    return base - span + (int)(eng_rand(eng) % (uint64_t)(2 * span + 1));
}

static void arm_timer(probe_engine *eng, probe_ep *ep)
{
    int ms;
    struct timeval tv;
    pthread_mutex_lock(&eng->mu);
    ms = next_delay_ms(eng, ep);
    pthread_mutex_unlock(&eng->mu);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(ep->timer, &tv);
}

static probe_ep *find_locked(probe_engine *eng, const char *id, size_t *idx)
{
    for (size_t i = 0; i < eng->n; i++)
        if (!eng->eps[i]->removed && strcmp(eng->eps[i]->st.id, id) == 0) {
            if (idx)
                *idx = i;
            return eng->eps[i];
        }
    return NULL;
}

static void ep_close(probe_ep *ep)
{
    if (ep->conn)
        event_free(ep->conn);
    ep->conn = NULL;
    if (ep->fd >= 0)
        close(ep->fd);
    ep->fd = -1;
}

/* Loop thread: drop ep from the table and free it. */
static void ep_destroy(probe_engine *eng, probe_ep *ep)
{
    pthread_mutex_lock(&eng->mu);
    for (size_t i = 0; i < eng->n; i++)
        if (eng->eps[i] == ep) {
            eng->eps[i] = eng->eps[--eng->n];
            break;
        }
    pthread_mutex_unlock(&eng->mu);
    ep_close(ep);
    event_free(ep->timer);
    free(ep);
}

/* ---- results -------------------------------------------------------------- */

static void ring_push(probe_state *st, const probe_sample *s)
{
    size_t fails = 0;
    if (st->n_history == PROBE_HISTORY) {
        memmove(st->history, st->history + 1, (PROBE_HISTORY - 1) * sizeof *s);
        st->n_history--;
    }
    st->history[st->n_history++] = *s;
    for (size_t i = 0; i < st->n_history; i++)
        fails += !st->history[i].ok;
    st->failure_ratio_ppm = (int32_t)(fails * 1000000 / st->n_history);
}

/* Fold one result into ep's state (mutex held). Returns 1 when the status
 * changed to UP or DOWN; *snap then holds the new state. */
static int apply_result(probe_engine *eng, probe_ep *ep, int ok, int64_t rtt_us, int error,
                        probe_state *snap)
{
    probe_state *st = &ep->st;
    probe_status before = st->status;
    probe_sample s = {now_wall_ms(), ok, ok ? rtt_us : 0, ok ? 0 : error};
    double a = eng->cfg.ewma_weight_ppm / 1e6;

    st->probes++;
    st->last_probe_ms = s.at_ms;
    ring_push(st, &s);
    if (ok) {
        st->last_rtt_ms = (double)rtt_us / 1000.0;
        st->srtt_ms =
            st->srtt_ms > 0.0 ? (1.0 - a) * st->srtt_ms + a * st->last_rtt_ms : st->last_rtt_ms;
        st->consecutive_failures = 0;
        st->status = PROBE_UP;
    } else {
        st->failures++;
        st->consecutive_failures++;
        if (st->consecutive_failures >= eng->cfg.failures_down)
            st->status = PROBE_DOWN;
    }
    if (st->status == before)
        return 0;
    st->last_change_ms = s.at_ms;
    *snap = *st;
    return 1;
}

static void finish_probe(probe_engine *eng, probe_ep *ep, int ok, int error)
{
    struct timespec t1;
    int64_t rtt_us;
    int changed;
    probe_state snap;
    probe_change_fn cb;
    void *arg;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    rtt_us = (int64_t)(t1.tv_sec - ep->t0.tv_sec) * 1000000 + (t1.tv_nsec - ep->t0.tv_nsec) / 1000;
    if (rtt_us < 1)
        rtt_us = 1;
    ep_close(ep);
    pthread_mutex_lock(&eng->mu);
    changed = !ep->removed && !ep->reset && apply_result(eng, ep, ok, rtt_us, error, &snap);
    cb = eng->on_change;
    arg = eng->on_change_arg;
    pthread_mutex_unlock(&eng->mu);
    if (changed && cb)
        cb(arg, &snap);
    arm_timer(eng, ep);
}

static void ep_conn_cb(evutil_socket_t fd, short what, void *arg)
{
    probe_ep *ep = arg;
    probe_engine *eng = ep->eng;
    int soerr = 0;
    socklen_t len = sizeof soerr;

    if (what & EV_TIMEOUT) {
        finish_probe(eng, ep, 0, ETIMEDOUT);
        return;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    finish_probe(eng, ep, soerr == 0, soerr);
}

/* Open a non-blocking socket and start connecting; completion comes to
 * ep_conn_cb (or the result is known at once). */
static void start_probe(probe_engine *eng, probe_ep *ep)
{
    struct timeval tv = {eng->cfg.timeout_ms / 1000, (eng->cfg.timeout_ms % 1000) * 1000};
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fd;

    pthread_mutex_lock(&eng->mu); /* set() may change the address from another thread */
    addr = ep->addr;
    addrlen = ep->addrlen;
    pthread_mutex_unlock(&eng->mu);
    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    clock_gettime(CLOCK_MONOTONIC, &ep->t0);
    if (fd < 0) {
        finish_probe(eng, ep, 0, errno);
        return;
    }
    ep->fd = fd;
    if (connect(fd, (struct sockaddr *)&addr, addrlen) == 0) {
        finish_probe(eng, ep, 1, 0);
        return;
    }
    if (errno != EINPROGRESS) {
        finish_probe(eng, ep, 0, errno);
        return;
    }
    ep->conn = event_new(eng->base, fd, EV_WRITE, ep_conn_cb, ep);
    if (!ep->conn || event_add(ep->conn, &tv) != 0)
        finish_probe(eng, ep, 0, ENOMEM);
}

static void ep_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    probe_ep *ep = arg;
    probe_engine *eng = ep->eng;
    int removed, reset;
    (void)fd;
    (void)what;

    pthread_mutex_lock(&eng->mu);
    removed = ep->removed;
    reset = ep->reset;
    ep->reset = 0;
    pthread_mutex_unlock(&eng->mu);
    if (removed) {
        ep_destroy(eng, ep);
        return;
    }
    if (reset) { /* new endpoint: drop a probe in flight, start over */
        ep_close(ep);
        evtimer_del(ep->timer);
    }
    if (ep->fd >= 0)
        return; /* a poke while connecting: the result re-arms the timer */
    start_probe(eng, ep);
}

/* ---- engine --------------------------------------------------------------- */

probe_engine *probe_engine_new(struct event_base *base, const probe_config *cfg, char *err,
                               size_t errlen)
{
    probe_engine *eng;
    struct timespec ts;
    if (!base || !cfg || probe_config_check(cfg, err, errlen) != 0)
        return NULL;
    eng = calloc(1, sizeof *eng);
    if (!eng) {
        put(err, errlen, "out of memory");
        return NULL;
    }
    eng->base = base;
    eng->cfg = *cfg;
    pthread_mutex_init(&eng->mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    eng->rng = (uint64_t)ts.tv_nsec * UINT64_C(0x9E3779B97F4A7C15) ^ (uintptr_t)eng;
    if (eng->rng == 0)
        eng->rng = 1;
    return eng;
}

void probe_engine_free(probe_engine *eng)
{
    if (!eng)
        return;
    for (size_t i = 0; i < eng->n; i++) {
        ep_close(eng->eps[i]);
        event_free(eng->eps[i]->timer);
        free(eng->eps[i]);
    }
    free(eng->eps);
    pthread_mutex_destroy(&eng->mu);
    free(eng);
}

/* Endpoint and its back pointer to the engine, allocated together. */
static probe_ep *ep_new(probe_engine *eng)
{
    probe_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return NULL;
    ep->eng = eng;
    ep->fd = -1;
    ep->timer = evtimer_new(eng->base, ep_timer_cb, ep);
    if (!ep->timer) {
        free(ep);
        return NULL;
    }
    return ep;
}

static int table_add_locked(probe_engine *eng, probe_ep *ep)
{
    if (eng->n == eng->cap) {
        size_t cap = eng->cap ? eng->cap * 2 : 16;
        probe_ep **eps = realloc(eng->eps, cap * sizeof *eps);
        if (!eps)
            return -1;
        eng->eps = eps;
        eng->cap = cap;
    }
    eng->eps[eng->n++] = ep;
    return 0;
}

int probe_engine_set(probe_engine *eng, const char *id, const char *endpoint, char *err,
                     size_t errlen)
{
    struct sockaddr_storage addr;
    unsigned alen = 0;
    probe_ep *ep;

    if (!id || !*id || strlen(id) > PROBE_ID_MAX) {
        put(err, errlen, "id: required, at most %d bytes", PROBE_ID_MAX);
        return -1;
    }
    if (probe_endpoint_parse(endpoint, &addr, sizeof addr, &alen, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&eng->mu);
    ep = find_locked(eng, id, NULL);
    if (ep && strcmp(ep->st.endpoint, endpoint) == 0) {
        pthread_mutex_unlock(&eng->mu);
        return 0; /* unchanged */
    }
    if (!ep) {
        ep = ep_new(eng);
        if (!ep || table_add_locked(eng, ep) != 0) {
            pthread_mutex_unlock(&eng->mu);
            if (ep) {
                event_free(ep->timer);
                free(ep);
            }
            put(err, errlen, "out of memory");
            return -1;
        }
    } else {
        ep->reset = 1;
    }
    memset(&ep->st, 0, sizeof ep->st);
    snprintf(ep->st.id, sizeof ep->st.id, "%s", id);
    snprintf(ep->st.endpoint, sizeof ep->st.endpoint, "%s", endpoint);
    memcpy(&ep->addr, &addr, sizeof addr);
    ep->addrlen = alen;
    pthread_mutex_unlock(&eng->mu);
    event_active(ep->timer, EV_TIMEOUT, 0); /* the loop probes at once */
    return 0;
}

int probe_engine_remove(probe_engine *eng, const char *id)
{
    probe_ep *ep;
    pthread_mutex_lock(&eng->mu);
    ep = id ? find_locked(eng, id, NULL) : NULL;
    if (ep)
        ep->removed = 1;
    pthread_mutex_unlock(&eng->mu);
    if (!ep)
        return -1;
    event_active(ep->timer, EV_TIMEOUT, 0);
    return 0;
}

int probe_engine_get(probe_engine *eng, const char *id, probe_state *out)
{
    probe_ep *ep;
    pthread_mutex_lock(&eng->mu);
    ep = id ? find_locked(eng, id, NULL) : NULL;
    if (ep)
        *out = ep->st;
    pthread_mutex_unlock(&eng->mu);
    return ep ? 0 : -1;
}

static int cmp_state(const void *a, const void *b)
{
    return strcmp(((const probe_state *)a)->id, ((const probe_state *)b)->id);
}

long probe_engine_snapshot(probe_engine *eng, probe_state **out)
{
    probe_state *v = NULL;
    size_t n = 0;
    pthread_mutex_lock(&eng->mu);
    if (eng->n > 0 && !(v = malloc(eng->n * sizeof *v))) {
        pthread_mutex_unlock(&eng->mu);
        *out = NULL;
        return -1;
    }
    for (size_t i = 0; i < eng->n; i++)
        if (!eng->eps[i]->removed)
            v[n++] = eng->eps[i]->st;
    pthread_mutex_unlock(&eng->mu);
    if (n == 0) {
        free(v);
        *out = NULL;
        return 0;
    }
    qsort(v, n, sizeof *v, cmp_state);
    *out = v;
    return (long)n;
}

void probe_engine_on_change(probe_engine *eng, probe_change_fn cb, void *arg)
{
    pthread_mutex_lock(&eng->mu);
    eng->on_change = cb;
    eng->on_change_arg = arg;
    pthread_mutex_unlock(&eng->mu);
}
