/*
 * paced_load.c - bench-paced: HTTP/1.1 load at a fixed request rate, with
 * latency percentiles corrected for coordinated omission (like wrk2).
 *
 *   bench-paced --url http://127.0.0.1:8080/v1/quotes --rate 5000 --duration 10
 *               [--conns 64] [--warmup 2] [--method POST] [--body JSON]
 *               [--header 'Authorization: Bearer ...']...
 *
 * Request i is due at t0 + i / rate. It is sent as soon as it is due and a
 * keep-alive connection is free; its latency is measured from when it was
 * DUE, not from when it was sent, so a server that falls behind shows its
 * queueing delay instead of silently slowing the load down. Requests due in
 * the warm-up are sent but not measured. Prints one JSON object:
 *   {"rate": R, "duration_s": S, "sent": N, "completed": N, "errors": E,
 *    "non_2xx": K, "achieved_rps": A, "p50_ms": .., "p90_ms": .., "p99_ms": ..,
 *    "p999_ms": .., "max_ms": ..}
 * Exit status 0, or 1 when any request failed (error or non-2xx), 2 on usage.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_HEADERS 16
#define MAX_CONNS 1024

struct conn {
    struct bufferevent *bev;
    int busy;       /* a request is outstanding */
    long long idx;  /* its index */
    long long need; /* body bytes still to skip, -1 while reading headers */
    int status;
};

static struct {
    struct event_base *base;
    struct sockaddr_in addr;
    char *request;
    size_t request_len;
    double rate, duration, warmup;
    int nconns;
    struct conn conns[MAX_CONNS];
    double t0;
    long long next, total, sent, completed, errors, non2xx;
    double *lat; /* ms, per measured request */
    long long nlat;
    struct event *tick;
} L;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_open(struct conn *c);
static void dispatch(void);

static void finish_request(struct conn *c, int ok)
{
    double due = L.t0 + (double)c->idx / L.rate;

    if (ok) {
        L.completed++;
        if (c->status < 200 || c->status > 299)
            L.non2xx++;
        if (due >= L.t0 + L.warmup)
            L.lat[L.nlat++] = (now_s() - due) * 1e3;
    } else {
        L.errors++;
    }
    c->busy = 0;
}

/* Parse as many complete responses as the input holds (one outstanding at a time). */
static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (c->busy) {
        if (c->need < 0) {
            struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            size_t hl;
            char *h, *cl;
            if (end.pos < 0)
                return;
            hl = (size_t)end.pos + 4;
            h = malloc(hl + 1);
            if (!h)
                return;
            evbuffer_remove(in, h, hl);
            h[hl] = '\0';
            c->status = (int)strtol(h + 9, NULL, 10); /* "HTTP/1.1 200" */
            cl = strcasestr(h, "\r\ncontent-length:");
            c->need = cl ? strtoll(cl + 17, NULL, 10) : 0;
            free(h);
        }
        if ((long long)evbuffer_get_length(in) < c->need)
            return;
        evbuffer_drain(in, (size_t)c->need);
        c->need = -1;
        finish_request(c, 1);
    }
    dispatch();
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (c->busy)
        finish_request(c, 0);
    bufferevent_free(c->bev);
    c->bev = NULL;
    conn_open(c); /* the next request goes to a fresh connection */
}

static void conn_open(struct conn *c)
{
    c->bev = bufferevent_socket_new(L.base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->busy = 0;
    c->need = -1;
    if (!c->bev)
        return;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&L.addr, sizeof L.addr) != 0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
}

/* Send every due request that has a free connection. */
static void dispatch(void)
{
    long long due = (long long)((now_s() - L.t0) * L.rate) + 1;

    if (due > L.total)
        due = L.total;
    for (int i = 0; i < L.nconns && L.next < due; i++) {
        struct conn *c = &L.conns[i];
        if (c->busy || !c->bev)
            continue;
        c->busy = 1;
        c->idx = L.next++;
        c->need = -1;
        bufferevent_write(c->bev, L.request, L.request_len);
        L.sent++;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    int outstanding = 0;

    (void)fd;
    (void)what;
    (void)arg;
    dispatch();
    for (int i = 0; i < L.nconns; i++)
        outstanding += L.conns[i].busy;
    /* stop once everything was sent and answered, or 5 s after the end */
    if ((L.next >= L.total && !outstanding) || now_s() > L.t0 + L.duration + 5)
        event_base_loopbreak(L.base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    long long i;

    if (L.nlat == 0)
        return 0;
    i = (long long)(p * (double)L.nlat);
    return L.lat[i >= L.nlat ? L.nlat - 1 : i];
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

int main(int argc, char **argv)
{
    const char *url = NULL, *method = NULL, *body = NULL, *headers[MAX_HEADERS];
    int nh = 0, rc;
    struct timeval tv = {0, 200}; /* dispatch tick: a due request waits at most this */

    L.nconns = 64;
    L.warmup = 0;
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
            return usage();
    }
    if ((argc - 1) % 2 || !url || L.rate <= 0 || L.duration <= 0 || L.warmup < 0 ||
        L.warmup >= L.duration || L.nconns < 1 || L.nconns > MAX_CONNS)
        return usage();
    if (build_request(url, method ? method : (body ? "POST" : "GET"), body, headers, nh) != 0)
        return usage();
    L.total = (long long)(L.rate * L.duration);
    L.lat = malloc(sizeof *L.lat * (size_t)(L.total + 1));
    {
        /* timerfd-backed timers: the tick below is sub-millisecond */
        struct event_config *cfg = event_config_new();
        if (cfg)
            event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        L.base = cfg ? event_base_new_with_config(cfg) : NULL;
        if (cfg)
            event_config_free(cfg);
    }
    if (!L.lat || !L.base) {
        fprintf(stderr, "bench-paced: out of memory\n");
        return 2;
    }
    for (int i = 0; i < L.nconns; i++)
        conn_open(&L.conns[i]);
    L.t0 = now_s() + 0.2; /* let the connections open */
    L.tick = event_new(L.base, -1, EV_PERSIST, on_tick, NULL);
    event_add(L.tick, &tv);
    event_base_dispatch(L.base);
    for (int i = 0; i < L.nconns; i++)
        if (L.conns[i].busy)
            L.errors++; /* never answered */
    qsort(L.lat, (size_t)L.nlat, sizeof *L.lat, cmp_double);
    printf(
        "{\"rate\": %.0f, \"duration_s\": %.1f, \"warmup_s\": %.1f, \"conns\": %d, \"sent\": %lld, "
        "\"completed\": %lld, \"errors\": %lld, \"non_2xx\": %lld, \"achieved_rps\": %.0f, "
        "\"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, \"p999_ms\": %.2f, "
        "\"max_ms\": %.2f}\n",
        L.rate, L.duration, L.warmup, L.nconns, L.sent, L.completed, L.errors, L.non2xx,
        (double)L.completed / L.duration, pct(0.50), pct(0.90), pct(0.99), pct(0.999),
        L.nlat ? L.lat[L.nlat - 1] : 0.0);
    rc = L.errors || L.non2xx || L.completed < L.total ? 1 : 0;
    for (int i = 0; i < L.nconns; i++)
        if (L.conns[i].bev)
            bufferevent_free(L.conns[i].bev);
    event_free(L.tick);
    event_base_free(L.base);
    free(L.lat);
    free(L.request);
    return rc;
}
