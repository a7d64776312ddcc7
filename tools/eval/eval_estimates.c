/*
 * eval_estimates.c - `tally-eval estimates --swf FILE`: replay a Standard
 * Workload Format trace in submit order and score three run-time predictors.
 *
 * Causality invariant: a job's prediction uses only what was known at its
 * submit time - its own user, executable, requested processors and time, and
 * jobs that had COMPLETED by then (submit + wait + run <= this submit time).
 * Completions are released from a min-heap ordered by (end time, job index)
 * before each prediction, and only then learned from.
 *
 * Methods:
 *   user_estimate  the requested time (field 9)
 *   last2          mean of the user's last two completed jobs (Tsafrir,
 *                  Etsion & Feitelson 2007), requested time without history
 *   tally          metering/estimate.c with history keys (user, executable,
 *                  procs, requested time) > (user, executable, procs) >
 *                  (user, executable) > user, reference = requested time,
 *                  capped at the requested time
 * A job with no requested time falls back, in both baselines, to the mean
 * run time of all jobs completed so far.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "estimate.h"
#include "eval.h"
#include "stats.h"
#include "swf.h"

/* ---- tiny int64 -> last-two map for the last2 baseline ------------------- */

typedef struct {
    int64_t user;
    int64_t last[2];
    int n, used;
} last2_slot;

typedef struct {
    last2_slot *slots;
    size_t cap, n;
} last2_map;

static last2_slot *last2_get(last2_map *m, int64_t user, int create)
{
    if (create && (m->n + 1) * 2 > m->cap) {
        last2_map bigger = {calloc(m->cap ? 2 * m->cap : 256, sizeof(last2_slot)),
                            m->cap ? 2 * m->cap : 256, 0};
        if (!bigger.slots)
            abort();
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].used)
                *last2_get(&bigger, m->slots[i].user, 1) = m->slots[i];
        free(m->slots);
        *m = bigger;
    }
    if (m->cap == 0)
        return NULL;
    size_t i = (size_t)((uint64_t)user * UINT64_C(0x9E3779B97F4A7C15) >> 20) & (m->cap - 1);
    while (m->slots[i].used && m->slots[i].user != user)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].used) {
        if (!create)
            return NULL;
        m->slots[i] = (last2_slot){.user = user, .used = 1};
        m->n++;
    }
    return &m->slots[i];
}

/* ---- completion heap ------------------------------------------------------ */

typedef struct {
    int64_t end;
    size_t idx;
} pending;

typedef struct {
    pending *v;
    size_t n, cap;
} heap;

static int before(const pending *a, const pending *b)
{
    return a->end < b->end || (a->end == b->end && a->idx < b->idx);
}

static void heap_push(heap *h, pending p)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 1024;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
        if (!h->v)
            abort();
    }
    size_t i = h->n++;
    h->v[i] = p;
    while (i > 0 && before(&h->v[i], &h->v[(i - 1) / 2])) {
        pending t = h->v[i];
        h->v[i] = h->v[(i - 1) / 2];
        h->v[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static pending heap_pop(heap *h)
{
    pending top = h->v[0];
    h->v[0] = h->v[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && before(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && before(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            break;
        pending t = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = t;
        i = m;
    }
    return top;
}

/* ---- replay ---------------------------------------------------------------- */

typedef struct {
    est_query q;
    int64_t p50;
} job_pred;

typedef struct {
    est_state *est;
    last2_map last2;
    double done_sum;
    size_t done_n;
    err_acc user, l2, tally;
} replay;

static est_query tally_query(const swf_job *j)
{
    uint64_t user = est_key_mix(est_key("swf", NULL, NULL), j->user);
    uint64_t exe = est_key_mix(user, j->exe);
    uint64_t procs = est_key_mix(exe, j->req_procs);
    est_query q = {.keys = {est_key_mix(procs, j->req_time), procs, exe, user}};
    if (j->req_time > 0)
        q.user_s = q.cap_s = j->req_time;
    return q;
}

static int64_t fallback(const replay *r)
{
    return r->done_n ? (int64_t)(r->done_sum / (double)r->done_n + 0.5) : 0;
}

static void learn(replay *r, const swf_job *j, const job_pred *p)
{
    est_learn(r->est, &p->q, p->p50, j->run);
    last2_slot *s = last2_get(&r->last2, j->user, 1);
    s->last[1] = s->last[0];
    s->last[0] = j->run;
    s->n += s->n < 2;
    r->done_sum += (double)j->run;
    r->done_n++;
}

static void predict(replay *r, const swf_job *j, job_pred *p)
{
    int64_t base = j->req_time > 0 ? j->req_time : fallback(r);
    err_add(&r->user, base, j->run);
    last2_slot *s = last2_get(&r->last2, j->user, 0);
    int64_t l2 = !s || s->n == 0 ? base
                 : s->n == 1     ? s->last[0]
                                 : (s->last[0] + s->last[1] + 1) / 2;
    err_add(&r->l2, l2, j->run);
    est_result res;
    p->q = tally_query(j);
    est_predict(r->est, &p->q, &res);
    p->p50 = res.p50_s;
    err_add(&r->tally, res.p50_s, j->run);
    err_add_bound(&r->tally, res.p90_s, j->run);
}

static void run_replay(replay *r, const swf_job *jobs, size_t n, job_pred *preds, size_t *skipped)
{
    heap h = {0};
    for (size_t i = 0; i < n; i++) {
        const swf_job *j = &jobs[i];
        if (j->run < 0 || j->submit < 0) {
            (*skipped)++;
            continue;
        }
        while (h.n > 0 && h.v[0].end <= j->submit) {
            pending done = heap_pop(&h);
            learn(r, &jobs[done.idx], &preds[done.idx]);
        }
        predict(r, j, &preds[i]);
        heap_push(&h, (pending){j->submit + (j->wait > 0 ? j->wait : 0) + j->run, i});
    }
    free(h.v);
}

static int cmp_submit(const void *a, const void *b)
{
    const swf_job *x = a, *y = b;
    if (x->submit != y->submit)
        return (x->submit > y->submit) - (x->submit < y->submit);
    return (x->id > y->id) - (x->id < y->id);
}

static void usage(void)
{
    fprintf(stderr, "usage: tally-eval estimates --swf FILE [--window N] [--min-resid N] "
                    "[--margin MILLINEPERS]\n");
}

static int parse_args(int argc, char **argv, const char **path, est_params *p)
{
    static const struct option opts[] = {
        {"swf", required_argument, 0, 's'},       {"window", required_argument, 0, 'w'},
        {"min-resid", required_argument, 0, 'm'}, {"margin", required_argument, 0, 'g'},
        {"slack", required_argument, 0, 'k'},     {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            *path = optarg;
            break;
        case 'w':
            p->window = (uint32_t)atoi(optarg);
            break;
        case 'm':
            p->min_resid = (uint32_t)atoi(optarg);
            break;
        case 'g':
            p->p90_margin_mnp = atoi(optarg);
            break;
        case 'k':
            p->cap_slack_ppm = (uint32_t)atoi(optarg);
            break;
        default:
            return -1;
        }
    }
    return *path ? 0 : -1;
}

static void print_result(replay *r, size_t jobs, size_t skipped)
{
    json_t *methods = json_pack("{s:o, s:o, s:o}", "user_estimate", err_to_json(&r->user), "last2",
                                err_to_json(&r->l2), "tally", err_to_json(&r->tally));
    json_t *out = json_pack("{s:I, s:I, s:o}", "jobs", (json_int_t)jobs, "skipped",
                            (json_int_t)skipped, "methods", methods);
    char *s = json_dumps(out, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    puts(s);
    free(s);
    json_decref(out);
}

int eval_estimates(int argc, char **argv)
{
    const char *path = NULL;
    est_params params = est_params_default();
    swf_job *jobs = NULL;
    size_t n = 0, malformed = 0, skipped = 0;
    if (parse_args(argc, argv, &path, &params) != 0) {
        usage();
        return 2;
    }
    if (swf_read(path, &jobs, &n, &malformed) != 0) {
        fprintf(stderr, "tally-eval: cannot read SWF file %s\n", path);
        return 1;
    }
    qsort(jobs, n, sizeof *jobs, cmp_submit); /* logs are sorted; be safe */
    replay r = {.est = est_new(&params)};
    job_pred *preds = calloc(n ? n : 1, sizeof *preds);
    if (!r.est || !preds) {
        fprintf(stderr, "tally-eval: out of memory\n");
        return 1;
    }
    run_replay(&r, jobs, n, preds, &skipped);
    print_result(&r, n - skipped, skipped + malformed);
    est_free(r.est);
    free(r.last2.slots);
    err_free(&r.user);
    err_free(&r.l2);
    err_free(&r.tally);
    free(preds);
    free(jobs);
    return 0;
}
