/* bench-baseline: the trivial libevent evhttp handler every HTTP figure is divided by.
 *
 * It answers any GET (and HEAD) with 200, Content-Type application/json and the body
 * {"status":"ok"}; other methods get 405. Nothing else: no routing, no logging, no
 * allocation beyond what evhttp itself does. That is the ceiling for an evhttp-based
 * service on this machine, measured in the same run as the service itself.
 *
 *   bench-baseline [--host ADDR] [--port P] [--threads N]
 *
 * Defaults: 127.0.0.1, port 8081, one thread. With --threads N each thread owns an
 * event_base and an evhttp bound to its own SO_REUSEPORT socket on the same port, so
 * the kernel spreads connections over the threads (the same model tallyd uses).
 * --port 0 picks a free port. When every thread is listening it prints
 * "bench-baseline: listening on HOST:PORT (N threads)" to stderr. SIGINT/SIGTERM stop it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

static const char BODY[] = "{\"status\":\"ok\"}";

struct worker {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    evutil_socket_t fd;
};

static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "GET, HEAD");
        evhttp_send_error(req, 405, "Method Not Allowed");
        return;
    }
    struct evbuffer *buf = evhttp_request_get_output_buffer(req);
    evhttp_add_header(out, "Content-Type", "application/json");
    evbuffer_add(buf, BODY, sizeof BODY - 1);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static evutil_socket_t listen_socket(const char *host, int port, int *bound_port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bench-baseline: bad IPv4 address '%s'\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("bench-baseline: socket");
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        perror("bench-baseline: setsockopt");
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0) {
        fprintf(stderr, "bench-baseline: cannot listen on %s:%d: %s\n", host, port,
                strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("bench-baseline: getsockname");
        close(fd);
        return -1;
    }
    *bound_port = ntohs(sa.sin_port);
    return fd;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static int parse_int(const char *s, const char *what, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench-baseline: %s must be an integer in [%d, %d], got '%s'\n", what, lo,
                hi, s);
        exit(2);
    }
    return (int)v;
}

static void usage(FILE *f)
{
    fputs("usage: bench-baseline [--host ADDR] [--port P] [--threads N]\n"
          "  Trivial evhttp server: 200 {\"status\":\"ok\"} to any GET.\n"
          "  Defaults: --host 127.0.0.1 --port 8081 --threads 1; --port 0 picks a free port.\n",
          f);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8081, nthreads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--host"))
            host = argv[++i];
        else if (!strcmp(a, "--port"))
            port = parse_int(argv[++i], "--port", 0, 65535);
        else if (!strcmp(a, "--threads"))
            nthreads = parse_int(argv[++i], "--threads", 1, 256);
        else {
            fprintf(stderr, "bench-baseline: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    /* Workers get no signals; the main thread waits for them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (evthread_use_pthreads() != 0) {
        fputs("bench-baseline: evthread_use_pthreads failed\n", stderr);
        return 1;
    }

    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    if (!ws)
        return 1;
    int bound = port;
    for (int i = 0; i < nthreads; i++) {
        struct worker *w = &ws[i];
        /* With --port 0 the first socket picks the port and the others join it. */
        w->fd = listen_socket(host, bound, &bound);
        if (w->fd < 0)
            return 1;
        w->base = event_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        if (!w->http) {
            fputs("bench-baseline: cannot create event base / evhttp\n", stderr);
            return 1;
        }
        evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
        evhttp_set_gencb(w->http, handle, NULL);
        if (!evhttp_accept_socket_with_handle(w->http, w->fd)) {
            fputs("bench-baseline: evhttp_accept_socket_with_handle failed\n", stderr);
            return 1;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&ws[i].thread, NULL, run, &ws[i]) != 0) {
            fputs("bench-baseline: pthread_create failed\n", stderr);
            return 1;
        }
    }
    fprintf(stderr, "bench-baseline: listening on %s:%d (%d thread%s)\n", host, bound, nthreads,
            nthreads == 1 ? "" : "s");
    fflush(stderr);

    int sig = 0;
    sigwait(&sigs, &sig);
    for (int i = 0; i < nthreads; i++)
        event_base_loopbreak(ws[i].base);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].thread, NULL);
        evhttp_free(ws[i].http); /* closes the bound socket */
        event_base_free(ws[i].base);
    }
    free(ws);
    libevent_global_shutdown();
    return 0;
}
