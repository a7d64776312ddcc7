/*
 * sched_external.c - post a placement to an external scheduler and take its order.
 */
#include "log.h"
#include "sched_external.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EXT_DEFAULT_TIMEOUT_MS 500

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char url[1024];
static int timeout_ms = EXT_DEFAULT_TIMEOUT_MS;
static unsigned long long n_ok, n_fallback; /* atomic */

static void load(void)
{
    const char *u = getenv("TALLY_SCHEDULER_URL"), *t = getenv("TALLY_SCHEDULER_TIMEOUT_MS");

    if (u && u[0])
        snprintf(url, sizeof url, "%s", u);
    if (t && atoi(t) >= 10 && atoi(t) <= 60000)
        timeout_ms = atoi(t);
}

int sched_external_check(char *err, size_t errlen)
{
    const char *u = getenv("TALLY_SCHEDULER_URL"), *t = getenv("TALLY_SCHEDULER_TIMEOUT_MS");
    char *end = NULL;
    long v = t ? strtol(t, &end, 10) : EXT_DEFAULT_TIMEOUT_MS;

    if (u && u[0] && (strncmp(u, "http://", 7) != 0 || strlen(u) >= sizeof url)) {
        snprintf(err, errlen, "TALLY_SCHEDULER_URL: an http:// URL of at most %zu bytes",
                 sizeof url - 1);
        return -1;
    }
    if (t && (!t[0] || *end || v < 10 || v > 60000)) {
        snprintf(err, errlen, "TALLY_SCHEDULER_TIMEOUT_MS: an integer from 10 to 60000, not '%s'",
                 t);
        return -1;
    }
    return 0;
}

const char *sched_external_url(void)
{
    pthread_once(&once, load);
    return url[0] ? url : NULL;
}

static json_t *request_json(const sched_input *in, const sched_result *res)
{
    json_t *offers = json_array(), *job;
    const sched_job *j = in->job;

    for (size_t k = 0; k < res->n_ranked; k++) {
        const sched_placement *p = &res->ranked[k];
        const sched_offer *o = &in->offers[p->offer_index];
        json_array_append_new(
            offers,
            json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:s, s:f, s:I, s:I, s:f, s:I, s:I, s:I}", "id",
                      o->id, "region", o->region, "zone", o->zone, "device", o->device_id,
                      "free_devices", (json_int_t)o->free_devices, "health",
                      o->health == SCHED_DOWN ? "down" : "up", "srtt_ms", o->srtt_ms, "price_micro",
                      (json_int_t)p->price_micro, "start_ms", (json_int_t)p->start_ms, "latency_ms",
                      p->latency_ms, "risk_ppm", (json_int_t)p->risk_ppm, "finish_p90_ms",
                      (json_int_t)p->finish_p90_ms, "builtin_score_micro",
                      (json_int_t)p->score_micro));
    }
    job = json_pack("{s:s?, s:I, s:I, s:I, s:I, s:s?, s:s?, s:I, s:I}", "profile", j->profile,
                    "work_mcu", (json_int_t)j->work_mcu, "p50_ms", (json_int_t)j->p50_ms, "p90_ms",
                    (json_int_t)j->p90_ms, "devices", (json_int_t)j->devices, "device_id",
                    j->device_id, "data_region", j->data_region, "deadline_ms",
                    (json_int_t)j->deadline_ms, "max_price_micro", (json_int_t)j->max_price_micro);
    return json_pack("{s:o, s:o, s:{s:I}}", "job", job, "offers", offers, "weights",
                     "latency_micro_per_ms", (json_int_t)in->weights.latency_micro_per_ms);
}

struct ext_call {
    struct event_base *base;
    int status;
    char *body;
};

static void on_reply(struct evhttp_request *req, void *arg)
{
    struct ext_call *x = arg;
    struct evbuffer *b;
    size_t n;

    x->status = req ? evhttp_request_get_response_code(req) : 0;
    if (req && (b = evhttp_request_get_input_buffer(req)) &&
        (n = evbuffer_get_length(b)) < (1u << 20) && (x->body = malloc(n + 1))) {
        evbuffer_copyout(b, x->body, n);
        x->body[n] = '\0';
    }
    event_base_loopbreak(x->base);
}

/* POST text to the URL; the reply body (malloc'd) or NULL with err. */
static char *post(const char *text, char *err, size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    struct ext_call x = {0};
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const char *host = u ? evhttp_uri_get_host(u) : NULL, *path;
    char target[1024];
    int port;

    if (!host || !evhttp_uri_get_scheme(u) || strcmp(evhttp_uri_get_scheme(u), "http") != 0) {
        snprintf(err, errlen, "TALLY_SCHEDULER_URL is not an http:// URL");
        goto out;
    }
    port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    path = evhttp_uri_get_path(u) && evhttp_uri_get_path(u)[0] ? evhttp_uri_get_path(u) : "/";
    snprintf(target, sizeof target, "%s", path);
    if (!(x.base = event_base_new()) ||
        !(conn = evhttp_connection_base_new(x.base, NULL, host, (unsigned short)port))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    evhttp_connection_set_timeout_tv(conn, &tv);
    evhttp_connection_set_retries(conn, 0);
    req = evhttp_request_new(on_reply, &x);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, target) != 0) {
        snprintf(err, errlen, "cannot send the request");
        goto out;
    }
    event_base_dispatch(x.base);
    if (x.status != 200) {
        snprintf(err, errlen,
                 x.status ? "HTTP status %d"
                          : "no answer within %d ms (timeout or "
                            "connection error)",
                 x.status ? x.status : timeout_ms);
        free(x.body);
        x.body = NULL;
    }
out:
    if (conn)
        evhttp_connection_free(conn);
    if (x.base)
        event_base_free(x.base);
    if (u)
        evhttp_uri_free(u);
    return x.body;
}

/* Reorder res->ranked by the ids in ranking (see the header). 0, or -1 with err. */
static int apply_ranking(sched_result *res, json_t *ranking, char *err, size_t errlen)
{
    sched_placement *out = calloc(res->n_ranked ? res->n_ranked : 1, sizeof *out);
    char *taken = calloc(res->n_ranked ? res->n_ranked : 1, 1);
    size_t n = 0, i;
    json_t *v;

    if (!out || !taken || !json_is_array(ranking)) {
        free(out);
        free(taken);
        snprintf(err, errlen, "the answer has no 'ranking' array");
        return -1;
    }
    json_array_foreach(ranking, i, v)
    {
        for (size_t k = 0; json_is_string(v) && k < res->n_ranked; k++)
            if (!taken[k] && !strcmp(res->ranked[k].offer_id, json_string_value(v))) {
                out[n++] = res->ranked[k];
                taken[k] = 1;
            }
    }
    for (size_t k = 0; k < res->n_ranked; k++)
        if (!taken[k])
            out[n++] = res->ranked[k];
    memcpy(res->ranked, out, n * sizeof *out);
    free(out);
    free(taken);
    return 0;
}

int sched_external_rank(const sched_input *in, sched_result *res, char *err, size_t errlen)
{
    json_t *req, *ans = NULL;
    char *text, *reply;
    int rc = -1;

    if (!sched_external_url()) {
        snprintf(err, errlen, "no external scheduler is configured");
        return -1;
    }
    req = request_json(in, res);
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    reply = text ? post(text, err, errlen) : NULL;
    free(text);
    if (reply && !(ans = json_loads(reply, 0, NULL)))
        snprintf(err, errlen, "the answer is not JSON");
    if (ans)
        rc = apply_ranking(res, json_object_get(ans, "ranking"), err, errlen);
    json_decref(ans);
    free(reply);
    __atomic_add_fetch(rc == 0 ? &n_ok : &n_fallback, 1, __ATOMIC_RELAXED);
    if (rc != 0)
        log_warn("scheduler", "external scheduler failed, built-in ranking used: %s", err);
    return rc;
}

void sched_external_metrics(void *arg, FILE *out)
{
    (void)arg;
    fprintf(out,
            "# HELP tally_scheduler_external_total Placements ranked by the external scheduler, "
            "by outcome.\n# TYPE tally_scheduler_external_total counter\n"
            "tally_scheduler_external_total{outcome=\"ok\"} %llu\n"
            "tally_scheduler_external_total{outcome=\"fallback\"} %llu\n",
            __atomic_load_n(&n_ok, __ATOMIC_RELAXED),
            __atomic_load_n(&n_fallback, __ATOMIC_RELAXED));
}
