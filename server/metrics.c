/*
 * metrics.c - lock-free request accounting and its text rendering.
 * Invariant: every counter only grows; histogram buckets are cumulative when
 * rendered (stored per bucket, summed on the way out).
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 201, 204, 400, 401, 403, 404, 405, 409,
                               413, 415, 422, 429, 500, 502, 503, 504};
#define NSTATUS (sizeof statuses / sizeof statuses[0] + 1) /* + "other" */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKET (sizeof buckets / sizeof buckets[0] + 1) /* + +Inf */

struct route_counters {
    unsigned long long by_status[NSTATUS];
    unsigned long long hist[NBUCKET];
    unsigned long long count;
    unsigned long long sum_us;
};

struct metrics {
    const route *routes;
    size_t nroutes;
    struct route_counters *rc; /* nroutes + 1: the last is "unmatched" */
    unsigned long long auth_hits, auth_misses;
    /* more gauges from other modules, in the order added (metrics_add_section) */
    metrics_section_fn section[METRICS_MAX_SECTIONS];
    void *section_arg[METRICS_MAX_SECTIONS];
    int nsections;
};

int metrics_add_section(metrics *m, metrics_section_fn fn, void *arg)
{
    if (m->nsections == METRICS_MAX_SECTIONS)
        return -1;
    m->section_arg[m->nsections] = arg;
    m->section[m->nsections++] = fn;
    return 0;
}

metrics *metrics_new(const route *routes, size_t nroutes)
{
    metrics *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->routes = routes;
    m->nroutes = nroutes;
    m->rc = calloc(nroutes + 1, sizeof *m->rc);
    if (!m->rc) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    free(m->rc);
    free(m);
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < NSTATUS - 1; i++)
        if (statuses[i] == status)
            return i;
    return NSTATUS - 1;
}

void metrics_observe(metrics *m, int route_index, int status, double seconds)
{
    struct route_counters *rc;
    size_t b = 0;

    if (route_index < 0 || (size_t)route_index >= m->nroutes)
        route_index = (int)m->nroutes;
    rc = &m->rc[route_index];
    while (b < NBUCKET - 1 && seconds > buckets[b])
        b++;
    __atomic_add_fetch(&rc->by_status[status_index(status)], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rc->hist[b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rc->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rc->sum_us, (unsigned long long)(seconds * 1e6), __ATOMIC_RELAXED);
}

void metrics_count_auth_cache(metrics *m, int hit)
{
    __atomic_add_fetch(hit ? &m->auth_hits : &m->auth_misses, 1, __ATOMIC_RELAXED);
}

static unsigned long long ld(const unsigned long long *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void route_label(const metrics *m, size_t i, char *buf, size_t len)
{
    if (i == m->nroutes)
        snprintf(buf, len, "method=\"\",route=\"unmatched\"");
    else
        snprintf(buf, len, "method=\"%s\",route=\"%s\"", router_method_name(m->routes[i].method),
                 m->routes[i].pattern);
}

static void render_requests(metrics *m, FILE *f)
{
    char label[512];

    fputs("# HELP tally_http_requests_total HTTP requests by route and status.\n"
          "# TYPE tally_http_requests_total counter\n",
          f);
    for (size_t i = 0; i <= m->nroutes; i++) {
        route_label(m, i, label, sizeof label);
        for (size_t s = 0; s < NSTATUS; s++) {
            unsigned long long v = ld(&m->rc[i].by_status[s]);
            if (!v)
                continue;
            if (s == NSTATUS - 1)
                fprintf(f, "tally_http_requests_total{%s,status=\"other\"} %llu\n", label, v);
            else
                fprintf(f, "tally_http_requests_total{%s,status=\"%d\"} %llu\n", label, statuses[s],
                        v);
        }
    }
}

static void render_latency(metrics *m, FILE *f)
{
    char label[512];

    fputs("# HELP tally_http_request_duration_seconds Time from request to reply.\n"
          "# TYPE tally_http_request_duration_seconds histogram\n",
          f);
    for (size_t i = 0; i <= m->nroutes; i++) {
        unsigned long long cum = 0, count = ld(&m->rc[i].count);
        if (!count)
            continue;
        route_label(m, i, label, sizeof label);
        for (size_t b = 0; b < NBUCKET; b++) {
            cum += ld(&m->rc[i].hist[b]);
            if (b < NBUCKET - 1)
                fprintf(f, "tally_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n", label,
                        buckets[b], cum);
            else
                fprintf(f, "tally_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
                        label, cum);
        }
        fprintf(f, "tally_http_request_duration_seconds_sum{%s} %.6f\n", label,
                (double)ld(&m->rc[i].sum_us) / 1e6);
        fprintf(f, "tally_http_request_duration_seconds_count{%s} %llu\n", label, count);
    }
}

static void render_db(const db_stats *db, FILE *f)
{
    fprintf(f,
            "# HELP tally_db_pool_connections Database connections by state.\n"
            "# TYPE tally_db_pool_connections gauge\n"
            "tally_db_pool_connections{state=\"in_use\"} %d\n"
            "tally_db_pool_connections{state=\"idle\"} %d\n"
            "tally_db_pool_connections{state=\"broken\"} %d\n"
            "tally_db_pool_connections{state=\"down\"} %d\n"
            "# HELP tally_db_pool_size Configured database connections.\n"
            "# TYPE tally_db_pool_size gauge\ntally_db_pool_size %d\n"
            "# HELP tally_db_queue_depth Database jobs waiting for a connection.\n"
            "# TYPE tally_db_queue_depth gauge\ntally_db_queue_depth %d\n"
            "# HELP tally_db_jobs_total Database jobs run.\n"
            "# TYPE tally_db_jobs_total counter\ntally_db_jobs_total %llu\n"
            "# HELP tally_db_errors_total Database jobs that failed (unavailable or SQL error).\n"
            "# TYPE tally_db_errors_total counter\ntally_db_errors_total %llu\n"
            "# HELP tally_db_retries_total Transactions re-run after serialization failures.\n"
            "# TYPE tally_db_retries_total counter\ntally_db_retries_total %llu\n"
            "# HELP tally_db_reconnects_total Jobs re-run after finding a connection dead.\n"
            "# TYPE tally_db_reconnects_total counter\ntally_db_reconnects_total %llu\n",
            db->in_use, db->idle, db->broken, db->size - db->in_use - db->idle - db->broken,
            db->size, db->queued, db->jobs, db->failures, db->retries, db->reconnects);
}

char *metrics_render(metrics *m, const db_stats *db, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    unsigned long long errors = 0;

    if (!f)
        return NULL;
    render_requests(m, f);
    render_latency(m, f);
    for (size_t i = 0; i <= m->nroutes; i++)
        for (size_t s = 0; s < NSTATUS - 1; s++)
            if (statuses[s] >= 500)
                errors += ld(&m->rc[i].by_status[s]);
    fprintf(f,
            "# HELP tally_http_errors_total Requests answered with a 5xx status.\n"
            "# TYPE tally_http_errors_total counter\ntally_http_errors_total %llu\n",
            errors);
    fprintf(f,
            "# HELP tally_auth_cache_total API-key cache lookups by result.\n"
            "# TYPE tally_auth_cache_total counter\n"
            "tally_auth_cache_total{result=\"hit\"} %llu\n"
            "tally_auth_cache_total{result=\"miss\"} %llu\n",
            ld(&m->auth_hits), ld(&m->auth_misses));
    if (db)
        render_db(db, f);
    for (int i = 0; i < m->nsections; i++)
        m->section[i](m->section_arg[i], f);
    fclose(f);
    return buf;
}
