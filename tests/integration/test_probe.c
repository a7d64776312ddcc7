/*
 * test_probe.c - the probe engine against REAL TCP listeners on loopback
 * ports that the test opens and closes: UP with an RTT > 0 while listening,
 * DOWN after exactly k failures once closed, UP again after one success when
 * reopened; changes and removals from another thread; a ticker on the same
 * loop shows the loop never stalls (also while probing an address that never
 * answers). No database needed.
 */
#include "probe.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define K 3

typedef struct {
    pthread_mutex_t mu;
    int ups, downs;
    probe_state last;
    int64_t last_tick_us, max_gap_us;
    struct event *ticker;
} watch;

static struct event_base *base;
static probe_engine *eng;
static pthread_t loop_thread;
static atomic_int stopping; /* read by the ticker: a loopbreak sent before the
                                 loop starts would be forgotten */
static watch w = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_change(void *arg, const probe_state *st)
{
    watch *x = arg;
    pthread_mutex_lock(&x->mu);
    if (st->status == PROBE_UP)
        x->ups++;
    else if (st->status == PROBE_DOWN)
        x->downs++;
    x->last = *st;
    pthread_mutex_unlock(&x->mu);
}

/* Every 5 ms: record the largest gap between ticks (a blocked loop shows up). */
static void tick(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = mono_us();
    (void)fd;
    (void)what;
    (void)arg;
    pthread_mutex_lock(&w.mu);
    if (w.last_tick_us && now - w.last_tick_us > w.max_gap_us)
        w.max_gap_us = now - w.last_tick_us;
    w.last_tick_us = now;
    pthread_mutex_unlock(&w.mu);
    if (stopping)
        event_base_loopbreak(base);
}

static void *run_loop(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* A listening socket on 127.0.0.1:port (0 = any free port); returns the fd,
 * the bound port in *port. Never accepts: the kernel completes handshakes. */
static int listen_on(int *port)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)*port);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void setup(void)
{
    probe_config cfg;
    struct timeval five_ms = {0, 5000};
    char err[256];
    cr_assert_eq(evthread_use_pthreads(), 0);
    base = event_base_new();
    cr_assert(base);
    probe_config_default(&cfg);
    cfg.interval_ms = 100;
    cfg.timeout_ms = 150;
    cfg.retry_ms = 30;
    cfg.failures_down = K;
    eng = probe_engine_new(base, &cfg, err, sizeof err);
    cr_assert(eng, "%s", err);
    probe_engine_on_change(eng, on_change, &w);
    w.ticker = event_new(base, -1, EV_PERSIST, tick, NULL);
    event_add(w.ticker, &five_ms);
    cr_assert_eq(pthread_create(&loop_thread, NULL, run_loop, NULL), 0);
}

static void teardown(void)
{
    stopping = 1;
    pthread_join(loop_thread, NULL);
    probe_engine_free(eng);
    event_free(w.ticker);
    event_base_free(base);
}

/* Poll (from this thread) until pred holds or ms elapse; 1 if it held. */
static int wait_for(int (*pred)(const char *), const char *id, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (pred(id))
            return 1;
        usleep(10000);
    }
    return pred(id);
}

static int is_status(const char *id, probe_status want)
{
    probe_state st;
    return probe_engine_get(eng, id, &st) == 0 && st.status == want;
}
static int is_up(const char *id)
{
    return is_status(id, PROBE_UP);
}
static int is_down(const char *id)
{
    return is_status(id, PROBE_DOWN);
}

static int max_gap_ms(void)
{
    int64_t g;
    pthread_mutex_lock(&w.mu);
    g = w.max_gap_us;
    pthread_mutex_unlock(&w.mu);
    return (int)(g / 1000);
}

TestSuite(probe, .init = setup, .fini = teardown, .timeout = 60);

Test(probe, up_down_up_with_real_listener)
{
    int port = 0, fd = listen_on(&port), downs, ups;
    char ep[64], err[256];
    probe_state st;

    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    cr_assert_eq(probe_engine_set(eng, "off_a", ep, err, sizeof err), 0, "%s", err);
    cr_assert(wait_for(is_up, "off_a", 2000), "never came up");
    usleep(350000); /* a few more cycles at 100 ms */
    cr_assert_eq(probe_engine_get(eng, "off_a", &st), 0);
    cr_assert_gt(st.srtt_ms, 0.0);
    cr_assert_gt(st.last_rtt_ms, 0.0);
    cr_assert_geq(st.probes, 3, "probes %llu after ~450 ms at 100 ms",
                  (unsigned long long)st.probes);
    cr_assert_eq(st.failures, 0);
    cr_assert_eq(st.failure_ratio_ppm, 0);
    /* EWMA of the samples: between the smallest and the largest one seen. */
    {
        double lo = 1e9, hi = 0;
        cr_assert_eq(st.n_history, st.probes < PROBE_HISTORY ? st.probes : PROBE_HISTORY);
        for (size_t i = 0; i < st.n_history; i++) {
            double r = (double)st.history[i].rtt_us / 1000.0;
            cr_assert(st.history[i].ok);
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
        }
        if (st.probes <= PROBE_HISTORY)
            cr_assert(st.srtt_ms >= lo - 1e-9 && st.srtt_ms <= hi + 1e-9, "srtt %f not in [%f, %f]",
                      st.srtt_ms, lo, hi);
    }

    close(fd); /* the provider goes away: connects are refused */
    cr_assert(wait_for(is_down, "off_a", 3000), "never went down");
    cr_assert_eq(probe_engine_get(eng, "off_a", &st), 0);
    cr_assert_eq(st.consecutive_failures, K, "down after exactly k failures, got %d",
                 st.consecutive_failures);
    cr_assert_eq(st.history[st.n_history - 1].ok, 0);
    cr_assert_eq(st.history[st.n_history - 1].error, ECONNREFUSED);
    cr_assert_gt(st.failure_ratio_ppm, 0);
    cr_assert_gt(st.last_change_ms, 0);

    fd = listen_on(&port); /* back on the same port */
    cr_assert(wait_for(is_up, "off_a", 3000), "never came back");
    cr_assert_eq(probe_engine_get(eng, "off_a", &st), 0);
    cr_assert_eq(st.consecutive_failures, 0);
    pthread_mutex_lock(&w.mu);
    ups = w.ups;
    downs = w.downs;
    pthread_mutex_unlock(&w.mu);
    cr_assert_eq(downs, 1, "one DOWN transition, got %d", downs);
    cr_assert_eq(ups, 2, "UP at start and after the restart, got %d", ups);
    cr_assert_lt(max_gap_ms(), 60, "event loop stalled %d ms", max_gap_ms());
    close(fd);
}

/* Down is announced between k-1 and k retries after the last success: with
 * retry 30 ms and 100 ms cycles, well within one cycle + (k-1) retries. */
Test(probe, down_within_one_cycle_plus_retries)
{
    int port = 0, fd = listen_on(&port);
    char ep[64];
    int64_t t0;
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    cr_assert_eq(probe_engine_set(eng, "off_b", ep, NULL, 0), 0);
    cr_assert(wait_for(is_up, "off_b", 2000));
    close(fd);
    t0 = mono_us();
    cr_assert(wait_for(is_down, "off_b", 3000));
    /* one cycle (100 ms + 10 % jitter) + 2 retries of 30 ms + polling slack */
    cr_assert_lt(mono_us() - t0, 400000, "took %lld us", (long long)(mono_us() - t0));
}

/* An address that never answers (TEST-NET-1, RFC 5737) times out or is
 * unreachable; either way it is a failure and the loop keeps ticking. */
Test(probe, silent_address_fails_without_blocking)
{
    probe_state st;
    cr_assert_eq(probe_engine_set(eng, "off_silent", "192.0.2.1:9", NULL, 0), 0);
    cr_assert(wait_for(is_down, "off_silent", 5000), "never went down");
    cr_assert_eq(probe_engine_get(eng, "off_silent", &st), 0);
    cr_assert_eq(st.srtt_ms, 0.0);
    cr_assert_eq(st.failure_ratio_ppm, 1000000);
    cr_assert_lt(max_gap_ms(), 60, "event loop stalled %d ms", max_gap_ms());
}

static int removed(const char *id)
{
    probe_state st;
    probe_state *all = NULL;
    long n = probe_engine_snapshot(eng, &all);
    int seen = 0;
    for (long i = 0; i < n; i++)
        seen |= strcmp(all[i].id, id) == 0;
    free(all);
    return probe_engine_get(eng, id, &st) != 0 && !seen;
}

Test(probe, set_snapshot_remove_from_another_thread)
{
    int p1 = 0, p2 = 0, f1 = listen_on(&p1), f2 = listen_on(&p2);
    char e1[64], e2[64];
    probe_state *all = NULL;
    long n;
    snprintf(e1, sizeof e1, "127.0.0.1:%d", p1);
    snprintf(e2, sizeof e2, "[::ffff:127.0.0.1]:%d", p2);
    cr_assert_eq(probe_engine_set(eng, "off_z", e1, NULL, 0), 0);
    cr_assert_eq(probe_engine_set(eng, "off_y", e2, NULL, 0), 0);
    cr_assert(wait_for(is_up, "off_z", 2000));
    n = probe_engine_snapshot(eng, &all);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(all[0].id, "off_y"); /* sorted by id */
    cr_assert_str_eq(all[1].id, "off_z");
    cr_assert_str_eq(all[0].endpoint, e2);
    free(all);
    cr_assert_eq(probe_engine_remove(eng, "off_z"), 0);
    cr_assert_eq(probe_engine_remove(eng, "off_z"), -1);
    cr_assert(wait_for(removed, "off_z", 1000));
    /* Changing an endpoint resets the state and probes the new address. */
    cr_assert_eq(probe_engine_set(eng, "off_y", e1, NULL, 0), 0);
    cr_assert(wait_for(is_up, "off_y", 2000));
    cr_assert_eq(probe_engine_remove(eng, "off_y"), 0);
    cr_assert(wait_for(removed, "off_y", 1000));
    close(f1);
    close(f2);
}

Test(probe, endpoints_must_be_numeric)
{
    char err[256];
    unsigned char sa[128];
    unsigned len = 0;
    cr_assert_eq(probe_endpoint_parse("127.0.0.1:80", sa, sizeof sa, &len, err, sizeof err), 0);
    cr_assert_eq(len, sizeof(struct sockaddr_in));
    cr_assert_eq(probe_endpoint_parse("[::1]:443", sa, sizeof sa, &len, err, sizeof err), 0);
    cr_assert_eq(len, sizeof(struct sockaddr_in6));
    cr_assert_eq(probe_engine_set(eng, "off_n", "localhost:80", err, sizeof err), -1);
    cr_assert(strstr(err, "numeric"), "%s", err);
    static const char *bad[] = {"",       "1.2.3.4", "1.2.3.4:0",   "1.2.3.4:65536", "1.2.3.4:x",
                                "::1:80", "[::1]80", "1.2.3.4:+80", "[1.2.3.4]:80",  "1.2.3:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(probe_endpoint_parse(bad[i], sa, sizeof sa, &len, NULL, 0), -1, "%s", bad[i]);
    cr_assert_eq(probe_engine_set(eng, "", "127.0.0.1:80", NULL, 0), -1);
}

static const char *fake_env(const char *name)
{
    if (strcmp(name, "TALLY_PROBE_INTERVAL_MS") == 0)
        return "5000";
    if (strcmp(name, "TALLY_PROBE_FAILURES") == 0)
        return "2";
    return NULL;
}
static const char *bad_env(const char *name)
{
    return strcmp(name, "TALLY_PROBE_TIMEOUT_MS") == 0 ? "5ms" : NULL;
}

Test(probe, config_from_env)
{
    probe_config c;
    char err[256];
    probe_config_default(&c);
    cr_assert_eq(c.interval_ms, 30000);
    cr_assert_eq(c.ewma_weight_ppm, 125000);
    cr_assert_eq(probe_config_from_env(&c, fake_env, err, sizeof err), 0);
    cr_assert_eq(c.interval_ms, 5000);
    cr_assert_eq(c.failures_down, 2);
    cr_assert_eq(c.timeout_ms, 2000);
    cr_assert_eq(probe_config_from_env(&c, bad_env, err, sizeof err), -1);
    cr_assert(strstr(err, "TALLY_PROBE_TIMEOUT_MS"), "%s", err);
    c.failures_down = 0;
    cr_assert_eq(probe_config_check(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "failures_down"), "%s", err);
}
