/*
 * paced_load.c - bench-paced: HTTP/1.1 load at a fixed request rate, with
 * latency percentiles corrected for coordinated omission (like wrk2).
 *
 *   bench-paced --url http://127.0.0.1:8080/v1/quotes --rate 5000 --duration 10
 *               [--conns 64] [--warmup 2] [--method POST] [--body JSON]
 *               [--header 'Authorization: Bearer ...']...
 *
 * Open loop: request i is due at t0 + i / rate, whatever happened to the
 * ones before it. It is sent as soon as it is due and a keep-alive
 * connection is free, and its latency is measured from when it was DUE, not
 * from when it was sent, so a server that falls behind shows its queueing
 * delay instead of silently slowing the load down. Requests due in the
 * warm-up are sent but not measured.
 *
 * The pacer must not be the bottleneck it measures, so it is cheap: one
 * thread, raw non-blocking sockets (TCP_NODELAY) registered once with epoll,
 * one write(2) and one read(2) per request, no allocation per request, and
 * it sleeps (epoll_pwait2 with a nanosecond timeout, 1 µs timer slack) until
 * the next request is due or a response arrives. It also reports what would
 * make its figures untrustworthy:
 *   send_lag_p99_ms  how late requests left the pacer after they were due
 *                    (the pacer itself was late or every connection was busy);
 *   conn_waits       requests that found every connection busy when due
 *                    (too few --conns for the server's latency);
 *   client_cpu_pct   the pacer's own CPU time over the run's wall time.
 *
 * Prints one JSON object:
 *   {"rate": R, "duration_s": S, "warmup_s": W, "conns": C, "sent": N,
 *    "completed": N, "errors": E, "non_2xx": K, "achieved_rps": A,
 *    "p50_ms": .., "p90_ms": .., "p99_ms": .., "p999_ms": .., "max_ms": ..,
 *    "send_lag_p99_ms": .., "conn_waits": .., "client_cpu_pct": ..}
 * Exit status 0, or 1 when any request failed (error or non-2xx), 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 16
#define MAX_CONNS 4096
#define RBUF 65536 /* one response's headers must fit; bodies are skipped */

struct conn {
    int fd;
    int busy;       /* a request is outstanding */
    long long idx;  /* its index */
    size_t woff;    /* bytes of the request written so far (partial writes) */
    int wout;       /* EPOLLOUT is enabled (after a partial write) */
    long long need; /* body bytes still to skip, -1 while reading headers */
    int status;
    size_t rlen; /* header bytes buffered */
    char rbuf[RBUF];
};

static struct {
    int ep;
    struct sockaddr_in addr;
    char *request;
    size_t request_len;
    double rate, duration, warmup;
    int nconns;
    struct conn *conns;
    int *idle; /* stack of idle connection indexes */
    int nidle;
    double t0;
    long long next, total, sent, completed, errors, non2xx;
    long long conn_waits, waited_upto; /* requests due while no connection was free */
    double *lat, *lag;                 /* ms, per measured request */
    long long nlat, nlag;
} L;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double due_s(long long idx)
{
    return L.t0 + (double)idx / L.rate;
}

static int measured(long long idx)
{
    return due_s(idx) >= L.t0 + L.warmup;
}

/* Open (or reopen) a blocking-connected, then non-blocking, keep-alive socket. */
static int conn_open(struct conn *c)
{
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN};

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&L.addr, sizeof L.addr) != 0 ||
        fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    ev.data.ptr = c;
    if (epoll_ctl(L.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->busy = 0;
    c->wout = 0;
    c->need = -1;
    c->rlen = 0;
    L.idle[L.nidle++] = (int)(c - L.conns);
    return 0;
}

/* The connection failed: its request (if any) is an error; reconnect it. */
static void conn_fail(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(L.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->busy) {
        L.errors++;
        c->busy = 0;
    } else {
        for (int i = 0; i < L.nidle; i++) /* drop it from the idle stack */
            if (L.idle[i] == (int)(c - L.conns)) {
                L.idle[i] = L.idle[--L.nidle];
                break;
            }
    }
    conn_open(c);
}

static void conn_done(struct conn *c, double now)
{
    L.completed++;
    if (c->status < 200 || c->status > 299)
        L.non2xx++;
    if (measured(c->idx))
        L.lat[L.nlat++] = (now - due_s(c->idx)) * 1e3;
    c->busy = 0;
    c->need = -1;
    c->rlen = 0;
    L.idle[L.nidle++] = (int)(c - L.conns);
}

/* Write what is left of c's request; enable EPOLLOUT only when the socket is full. */
static void conn_write(struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    while (c->woff < L.request_len) {
        ssize_t n = write(c->fd, L.request + c->woff, L.request_len - c->woff);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            ev.events = EPOLLIN | EPOLLOUT;
            c->wout = 1;
            epoll_ctl(L.ep, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }
        conn_fail(c);
        return;
    }
    if (c->wout) { /* only after a partial write */
        c->wout = 0;
        epoll_ctl(L.ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/* Parse the status line and Content-Length of the buffered header block
 * (hl bytes, ending in CRLFCRLF). Chunked bodies are not supported. */
static void parse_headers(struct conn *c, size_t hl)
{
    const char *h = c->rbuf, *end = c->rbuf + hl, *p;

    c->status = hl > 12 ? (int)strtol(h + 9, NULL, 10) : 0; /* "HTTP/1.1 200" */
    c->need = 0;
    for (p = h; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
        p++;
        if (end - p > 15 && !strncasecmp(p, "content-length:", 15)) {
            c->need = strtoll(p + 15, NULL, 10);
            break;
        }
    }
}

/* Consume readable bytes of c: headers into rbuf, the body skipped. */
static void conn_read(struct conn *c, double now)
{
    static char skip[16384]; /* bodies are read and dropped */

    for (;;) {
        char *dst = c->need < 0 ? c->rbuf + c->rlen : skip;
        size_t room = c->need < 0 ? RBUF - c->rlen - 1 : sizeof skip;
        ssize_t n;
        if (c->need >= 0 && (long long)room > c->need)
            room = (size_t)c->need; /* never read past this response */
        if (c->need == 0) {
            conn_done(c, now);
            return;
        }
        n = read(c->fd, dst, room);
        if (n == 0 || (n < 0 && errno != EAGAIN) || room == 0) {
            conn_fail(c);
            return;
        }
        if (n < 0)
            return; /* EAGAIN: wait for more */
        if (!c->busy) {
            conn_fail(c); /* bytes nobody asked for */
            return;
        }
        if (c->need >= 0) {
            c->need -= n;
            continue;
        }
        c->rlen += (size_t)n;
        c->rbuf[c->rlen] = '\0';
        {
            char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
            size_t hl, extra;
            if (!e)
                continue;
            hl = (size_t)(e - c->rbuf) + 4;
            extra = c->rlen - hl; /* body bytes read with the headers */
            parse_headers(c, hl);
            if ((long long)extra > c->need) {
                conn_fail(c); /* more than one response: the server misbehaves */
                return;
            }
            c->need -= (long long)extra;
        }
    }
}

/* Send every request that is due, while a connection is free. */
static void dispatch(double now)
{
    long long due = (long long)((now - L.t0) * L.rate) + 1;

    if (now < L.t0)
        due = 0;
    if (due > L.total)
        due = L.total;
    while (L.next < due && L.nidle > 0) {
        struct conn *c = &L.conns[L.idle[--L.nidle]];
        c->busy = 1;
        c->idx = L.next++;
        c->woff = 0;
        c->need = -1;
        c->rlen = 0;
        if (measured(c->idx))
            L.lag[L.nlag++] = (now - due_s(c->idx)) * 1e3;
        L.sent++;
        conn_write(c);
    }
    if (L.next < due) { /* due, but every connection is busy: count each request once */
        long long from = L.next > L.waited_upto ? L.next : L.waited_upto;
        if (due > from)
            L.conn_waits += due - from;
        if (due > L.waited_upto)
            L.waited_upto = due;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, long long n, double p)
{
    long long i;

    if (n == 0)
        return 0;
    i = (long long)(p * (double)n);
    return v[i >= n ? n - 1 : i];
}

static int usage(void)
{
    fprintf(stderr, "usage: bench-paced --url http://HOST:PORT/PATH --rate R --duration S "
                    "[--conns N] [--warmup S] [--method M] [--body TEXT] [--header 'K: V']...\n");
    return 2;
}

/* Build the request bytes; only http://IPv4:port/path URLs. */
static int build_request(const char *url, const char *method, const char *body,
                         const char *const *headers, int nh)
{
    char host[64], path[1024];
    int port = 80;
    size_t cap;

    if (sscanf(url, "http://%63[0-9.]:%d%1023s", host, &port, path) != 3 || port <= 0 ||
        port > 65535)
        return -1;
    memset(&L.addr, 0, sizeof L.addr);
    L.addr.sin_family = AF_INET;
    L.addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &L.addr.sin_addr) != 1)
        return -1;
    cap = 512 + strlen(path) + (body ? strlen(body) : 0);
    for (int i = 0; i < nh; i++)
        cap += strlen(headers[i]) + 2;
    L.request = malloc(cap);
    if (!L.request)
        return -1;
    L.request_len = (size_t)snprintf(L.request, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method,
                                     path, host, port);
    for (int i = 0; i < nh; i++)
        L.request_len +=
            (size_t)snprintf(L.request + L.request_len, cap - L.request_len, "%s\r\n", headers[i]);
    if (body)
        L.request_len += (size_t)snprintf(
            L.request + L.request_len, cap - L.request_len,
            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        L.request_len += (size_t)snprintf(L.request + L.request_len, cap - L.request_len, "\r\n");
    return 0;
}

static int parse_args(int argc, char **argv)
{
    const char *url = NULL, *method = NULL, *body = NULL, *headers[MAX_HEADERS];
    int nh = 0;

    L.nconns = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "--rate"))
            L.rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            L.duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            L.warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns"))
            L.nconns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--method"))
            method = argv[i + 1];
        else if (!strcmp(argv[i], "--body"))
            body = argv[i + 1];
        else if (!strcmp(argv[i], "--header") && nh < MAX_HEADERS)
            headers[nh++] = argv[i + 1];
        else
            return -1;
    }
    if ((argc - 1) % 2 || !url || L.rate <= 0 || L.duration <= 0 || L.warmup < 0 ||
        L.warmup >= L.duration || L.nconns < 1 || L.nconns > MAX_CONNS)
        return -1;
    return build_request(url, method ? method : (body ? "POST" : "GET"), body, headers, nh);
}

/* How long to sleep: until the next request is due (if a connection is free), else until
 * a response arrives; never more than 10 ms, so the end of the run is noticed. */
static struct timespec next_timeout(double now)
{
    double wait = 0.010;
    struct timespec ts;

    if (L.next < L.total && L.nidle > 0) {
        double d = due_s(L.next) - now;
        wait = d < 0 ? 0 : (d < wait ? d : wait);
    }
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(wait * 1e9);
    return ts;
}

static void run(void)
{
    struct epoll_event evs[256];

    for (;;) {
        double now = now_s();
        struct timespec to;
        int n;
        dispatch(now);
        if ((L.next >= L.total && L.nidle == L.nconns) || now > L.t0 + L.duration + 5)
            return;
        to = next_timeout(now);
        n = epoll_pwait2(L.ep, evs, 256, &to, NULL);
        now = now_s();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && c->busy)
                conn_write(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                conn_read(c, now);
        }
    }
}

int main(int argc, char **argv)
{
    struct rusage ru;
    double wall0, wall, cpu;
    int rc;

    if (parse_args(argc, argv) != 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 µs: wake when the next request is due */
    L.total = (long long)(L.rate * L.duration);
    L.lat = malloc(sizeof *L.lat * (size_t)(L.total + 1));
    L.lag = malloc(sizeof *L.lag * (size_t)(L.total + 1));
    L.conns = calloc((size_t)L.nconns, sizeof *L.conns);
    L.idle = calloc((size_t)L.nconns, sizeof *L.idle);
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!L.lat || !L.lag || !L.conns || !L.idle || L.ep < 0) {
        fprintf(stderr, "bench-paced: out of memory\n");
        return 2;
    }
    for (int i = 0; i < L.nconns; i++)
        if (conn_open(&L.conns[i]) != 0) {
            fprintf(stderr, "bench-paced: cannot connect: %s\n", strerror(errno));
            return 2;
        }
    wall0 = now_s();
    L.t0 = wall0 + 0.05;
    run();
    wall = now_s() - wall0;
    for (int i = 0; i < L.nconns; i++)
        if (L.conns[i].busy)
            L.errors++; /* never answered */
    getrusage(RUSAGE_SELF, &ru);
    cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    qsort(L.lat, (size_t)L.nlat, sizeof *L.lat, cmp_double);
    qsort(L.lag, (size_t)L.nlag, sizeof *L.lag, cmp_double);
    printf(
        "{\"rate\": %.0f, \"duration_s\": %.1f, \"warmup_s\": %.1f, \"conns\": %d, \"sent\": %lld, "
        "\"completed\": %lld, \"errors\": %lld, \"non_2xx\": %lld, \"achieved_rps\": %.0f, "
        "\"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, \"p999_ms\": %.2f, "
        "\"max_ms\": %.2f, \"send_lag_p99_ms\": %.2f, \"conn_waits\": %lld, "
        "\"client_cpu_pct\": %.1f}\n",
        L.rate, L.duration, L.warmup, L.nconns, L.sent, L.completed, L.errors, L.non2xx,
        (double)L.completed / L.duration, pct(L.lat, L.nlat, 0.50), pct(L.lat, L.nlat, 0.90),
        pct(L.lat, L.nlat, 0.99), pct(L.lat, L.nlat, 0.999), L.nlat ? L.lat[L.nlat - 1] : 0.0,
        pct(L.lag, L.nlag, 0.99), L.conn_waits, wall > 0 ? 100 * cpu / wall : 0);
    rc = L.errors || L.non2xx || L.completed < L.total ? 1 : 0;
    for (int i = 0; i < L.nconns; i++)
        if (L.conns[i].fd >= 0)
            close(L.conns[i].fd);
    close(L.ep);
    free(L.conns);
    free(L.idle);
    free(L.lat);
    free(L.lag);
    free(L.request);
    return rc;
}
