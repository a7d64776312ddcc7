/*
 * eval_placement.c - `tally-eval placement --latency FILE --jobs N --seed S`:
 * a seeded discrete-event simulation that compares four placement policies
 * on the same providers, jobs and outages (docs/scheduling.md explains the
 * model and its limits; docs/benchmarks.md has the figures).
 *
 * World. One to three providers in every region of the RTT matrix; each has
 * a catalog device (GPU/NPU/accelerator), 1-4 nodes of 8, a list price per
 * device-hour that tracks the device's llm-train CU rate (the catalog has no
 * prices) times a regional factor (0.9-1.2) and a provider markup
 * (0.85-1.25), and a fixed last-mile delay (0-25 ms) that users see on top
 * of the region-to-region RTT and that only probing can reveal. Outages: on
 * average one per provider per 24 h, exponential length (mean 10 min, at
 * least 2 min); an outage kills the jobs running there.
 *
 * Jobs arrive as a Poisson process from users spread evenly over the regions
 * (load about half the capacity): llm-decode (60 %) or llm-train, 1-8
 * devices, work sized to about an hour on the reference device (exponential,
 * 5 min to 8 h). A job's response latency is the symmetrised RTT between its
 * users' region and the provider's, plus that provider's last-mile delay.
 *
 * Failure handling, the same for every policy: a start on a dead provider is
 * noticed after 30 s and the job is placed again elsewhere; a running job on
 * a provider that dies is noticed by its 60 s heartbeat lease and re-placed;
 * a provider that failed a start or a lease is avoided for 5 min (passive
 * ejection). Tally also probes every provider on a 30 s cycle (1 s timeout,
 * 2 s fast retry, k = 3): one failed probe raises the offer's risk term, k
 * mark it down, and running jobs there are re-placed at once. A job that
 * finds no capacity waits (retry each minute) and fails after 30 min.
 *
 * Policies: round_robin (next provider in a global rotation that has room),
 * static_geo (the nearest region by the matrix, then the next nearest),
 * cost_only (cheapest total price), tally (sched_place: price + latency
 * term + risk term; the latency weight is per job, --weight-ppm (default
 * 1 000) of the job's reference cost per ms of latency; --slack-ppm K > 0
 * adds the budget rule "at most K ppm over the cheapest feasible offer").
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "catalog.h"
#include "cu.h"
#include "eval.h"
#include "latency.h"
#include "money.h"
#include "place.h"

#define MAX_PROVIDERS (SCHED_MAX_REGIONS * 3)
#define MAX_EXCLUDED 8
#define MAX_OUTAGES 64
#define SEC INT64_C(1000)
#define HOUR (3600 * SEC)

enum { POL_RR, POL_GEO, POL_COST, POL_TALLY, POL_COUNT };
static const char *const policy_names[POL_COUNT] = {"round_robin", "static_geo", "cost_only",
                                                    "tally"};

typedef struct {
    int64_t start_timeout_ms, lease_ms, eject_ms, wait_retry_ms, max_wait_ms;
    int64_t probe_interval_ms, probe_timeout_ms, probe_retry_ms;
    int probe_k;
    int64_t weight_ppm_per_ms, slack_ppm;
} sim_params;

typedef struct {
    int64_t a, b; /* [a, b) unix-free sim ms */
} outage;

typedef struct {
    char id[32];
    int region;
    const char *device;
    const char *kind;
    int64_t mem_gib, devices, free;
    int64_t price_dev_h;   /* micro-units per device-hour */
    int64_t rate[2];       /* mCU per device-hour: [0] llm-decode, [1] llm-train */
    double extra_ms;       /* last-mile delay */
    int64_t phase_ms;      /* probe phase */
    int64_t ejected_until; /* passive ejection */
    size_t n_out;
    outage out[MAX_OUTAGES];
} provider;

typedef enum { J_NEW, J_RUNNING, J_DONE, J_FAILED } job_status;

typedef struct {
    int user, profile, devices;
    int64_t work_mcu, ref_cost, arrive, give_up;
    job_status st;
    int prov, exec;
    int64_t run_start, run_end, price;
    int excl[MAX_EXCLUDED], n_excl;
    int delayed;
    int64_t disrupted_at; /* -1 = not waiting on a failure */
    double latency_ms;
    int64_t cost;
} job;

typedef enum { EV_ARRIVE, EV_RETRY, EV_FINISH, EV_OUT_START, EV_DETECT } ev_kind;

typedef struct {
    int64_t t;
    uint64_t seq;
    ev_kind kind;
    int a, b; /* job or provider, exec id */
} event;

typedef struct {
    event *v;
    size_t n, cap;
    uint64_t seq;
} heap;

typedef struct {
    const sched_latency *lat;
    const sim_params *par;
    int probe_region;
    provider *prov;
    size_t n_prov;
    job *jobs;
    size_t n_jobs;
    int policy;
    size_t rr_next;
    heap h;
    /* results */
    size_t delayed, failed, recoveries, routes;
    double recovery_s_sum, route_s_sum;
    sched_offer *offers;
    sched_result res; /* reused by every tally placement */
} sim;

/* ---- seeded randomness (splitmix64) -------------------------------------- */

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double rnd_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rnd_next(s) >> 11) / 9007199254740992.0;
}

static double rnd_exp(uint64_t *s, double mean)
{
    return -mean * log(1.0 - rnd_unit(s));
}

/* ---- event heap ------------------------------------------------------------ */

static int ev_less(const event *x, const event *y)
{
    return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static int heap_push(heap *h, int64_t t, ev_kind k, int a, int b)
{
    size_t i;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        event *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    i = h->n++;
    h->v[i] = (event){t, h->seq++, k, a, b};
    while (i > 0 && ev_less(&h->v[i], &h->v[(i - 1) / 2])) {
        event tmp = h->v[i];
        h->v[i] = h->v[(i - 1) / 2];
        h->v[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
    return 0;
}

static event heap_pop(heap *h)
{
    event top = h->v[0];
    size_t i = 0;
    h->v[0] = h->v[--h->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && ev_less(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && ev_less(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            break;
        event tmp = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = tmp;
        i = m;
    }
    return top;
}

/* ---- world ------------------------------------------------------------------ */

static int64_t ms_of(double seconds)
{
    return (int64_t)llround(seconds * 1000.0);
}

static double rtt(const sim *s, int a, int b)
{
    double x = sched_latency_rtt_sym(s->lat, a, b);
    return x >= 0.0 ? x : 500.0; /* a pair the matrix lacks: far away */
}

static int is_down(const provider *p, int64_t t)
{
    for (size_t i = 0; i < p->n_out; i++)
        if (t >= p->out[i].a && t < p->out[i].b)
            return 1;
    return 0;
}

static void make_outages(provider *p, uint64_t *rng, int64_t horizon)
{
    int64_t t = ms_of(rnd_exp(rng, 24 * 3600.0));
    while (t < horizon && p->n_out < MAX_OUTAGES) {
        int64_t len = ms_of(rnd_exp(rng, 600.0));
        if (len < 120 * SEC)
            len = 120 * SEC;
        p->out[p->n_out++] = (outage){t, t + len};
        t += len + ms_of(rnd_exp(rng, 24 * 3600.0));
    }
}

/* Devices the simulation may place on: accelerators with an llm-train rate. */
static int usable_device(const cat_catalog *cat, const cat_device *d, const cu_profile prof[2],
                         int64_t rate[2])
{
    cu_rate r;
    cu_error e;
    if (cat_device_kind(d) == CAT_KIND_CPU)
        return 0;
    for (int i = 0; i < 2; i++) {
        if (cu_rate_for(cat, NULL, cat_device_id(d), 1, &prof[i], &r, &e) != CU_OK ||
            r.rate_mcu_per_hour <= 0)
            return 0;
        rate[i] = r.rate_mcu_per_hour;
    }
    return 1;
}

/* Providers in every region; returns the count or -1. ref_rate gets the
 * reference device's rates (H100 SXM when the catalog has it). */
static long make_providers(sim *s, const cat_catalog *cat, const cu_profile prof[2], uint64_t *rng,
                           int64_t ref_rate[2])
{
    const cat_device *dev[CAT_MAX_DEVICES];
    int64_t rates[CAT_MAX_DEVICES][2];
    size_t nd = 0;
    double per_cu_h; /* micro-units per llm-train CU-hour: the reference device at 2.50/h */

    for (size_t i = 0; i < cat_device_count(cat) && nd < CAT_MAX_DEVICES; i++)
        if (usable_device(cat, cat_device_at(cat, i), prof, rates[nd]))
            dev[nd++] = cat_device_at(cat, i);
    if (nd == 0)
        return -1;
    ref_rate[0] = rates[0][0];
    ref_rate[1] = rates[0][1];
    for (size_t i = 0; i < nd; i++)
        if (strcmp(cat_device_id(dev[i]), "nvidia-h100-sxm") == 0)
            ref_rate[0] = rates[i][0], ref_rate[1] = rates[i][1];
    per_cu_h = 2500000.0 / (double)ref_rate[1];
    for (size_t r = 0; r < sched_latency_count(s->lat); r++) {
        double region_factor = 0.9 + 0.3 * rnd_unit(rng);
        int n = 1 + (int)(rnd_next(rng) % 3);
        for (int k = 0; k < n && s->n_prov < MAX_PROVIDERS; k++) {
            provider *p = &s->prov[s->n_prov];
            size_t d = (size_t)(rnd_next(rng) % nd);
            snprintf(p->id, sizeof p->id, "off_%03zu", s->n_prov);
            p->region = (int)r;
            p->device = cat_device_id(dev[d]);
            p->kind = cat_kind_name(cat_device_kind(dev[d]));
            p->mem_gib = cat_device_memory_gb(dev[d]);
            p->devices = p->free = 8 * (1 + (int64_t)(rnd_next(rng) % 4));
            p->rate[0] = rates[d][0];
            p->rate[1] = rates[d][1];
            p->price_dev_h = (int64_t)llround(per_cu_h * (double)rates[d][1] * region_factor *
                                              (0.85 + 0.4 * rnd_unit(rng)));
            p->extra_ms = 25.0 * rnd_unit(rng);
            p->phase_ms = (int64_t)(rnd_next(rng) % (uint64_t)s->par->probe_interval_ms);
            s->n_prov++;
        }
    }
    return (long)s->n_prov;
}

static int64_t total_devices(const sim *s)
{
    int64_t n = 0;
    for (size_t i = 0; i < s->n_prov; i++)
        n += s->prov[i].devices;
    return n;
}

/* Device-weighted mean of (reference rate / provider rate) over the job mix
 * (60 % llm-decode): how much longer than on the reference a job runs on an
 * average device of the fleet. */
static double slowdown(const sim *s, const int64_t ref_rate[2])
{
    double sum = 0.0;
    for (size_t i = 0; i < s->n_prov; i++) {
        const provider *p = &s->prov[i];
        sum += (double)p->devices * (0.6 * (double)ref_rate[0] / (double)p->rate[0] +
                                     0.4 * (double)ref_rate[1] / (double)p->rate[1]);
    }
    return sum / (double)total_devices(s);
}

static int make_jobs(sim *s, uint64_t *rng, const int64_t ref_rate[2], int64_t *horizon)
{
    static const int sizes[] = {1, 1, 2, 4, 8};
    /* mean devices 3.2 x mean 1 h on the reference device x the fleet's mean
     * slowdown against it, at 50 % of capacity -> arrival gap */
    double gap_s = 3.2 * 3600.0 * slowdown(s, ref_rate) / (0.5 * (double)total_devices(s));
    int64_t t = 0;
    for (size_t i = 0; i < s->n_jobs; i++) {
        job *j = &s->jobs[i];
        double hours = rnd_exp(rng, 1.0);
        hours = hours < 5.0 / 60.0 ? 5.0 / 60.0 : hours > 8.0 ? 8.0 : hours;
        t += ms_of(rnd_exp(rng, gap_s));
        j->arrive = t;
        j->user = (int)(rnd_next(rng) % sched_latency_count(s->lat));
        j->profile = rnd_unit(rng) < 0.6 ? 0 : 1;
        j->devices = sizes[rnd_next(rng) % 5];
        j->work_mcu = (int64_t)llround(hours * (double)ref_rate[j->profile] * j->devices);
        /* reference cost: the job on the reference device at 2.50/device-hour */
        j->ref_cost = (int64_t)llround(hours * j->devices * 2500000.0);
        j->prov = -1;
        j->disrupted_at = -1;
    }
    *horizon = t + 10 * HOUR;
    return 0;
}

/* ---- the probe model (tally only) ----------------------------------------- */

typedef struct {
    int down;
    int consecutive;
    int64_t down_at; /* when probes marked it down (for the outage in progress) */
} probe_view;

/* When Tally's probes mark p down for outage o: the first cycle probe at or
 * after o->a starts a failing streak; probe i of it starts at
 * p1 + i (timeout + retry) and is known at +timeout. -1 when the outage ends
 * before k probes fail. *p1_out gets p1. */
static int64_t probe_down_at(const sim *s, const provider *p, const outage *o, int64_t *p1_out)
{
    const sim_params *q = s->par;
    int64_t step = q->probe_timeout_ms + q->probe_retry_ms;
    int64_t p1 =
        p->phase_ms + ((o->a - p->phase_ms + q->probe_interval_ms - 1) / q->probe_interval_ms) *
                          q->probe_interval_ms;
    *p1_out = p1;
    if (p1 + (q->probe_k - 1) * step >= o->b)
        return -1;
    return p1 + (q->probe_k - 1) * step + q->probe_timeout_ms;
}

/* What Tally's probes know of p at time t: down from probe_down_at until
 * the first cycle probe after the outage; before that, the failures seen. */
static probe_view probe_at(const sim *s, const provider *p, int64_t t)
{
    const sim_params *q = s->par;
    probe_view v = {0, 0, -1};
    int64_t step = q->probe_timeout_ms + q->probe_retry_ms;
    for (size_t i = 0; i < p->n_out; i++) {
        const outage *o = &p->out[i];
        int64_t p1, down_at = probe_down_at(s, p, o, &p1);
        int fails = 0;
        if (p1 >= o->b || t < p1 + q->probe_timeout_ms)
            continue;
        if (down_at >= 0 && t >= down_at) {
            int64_t up_at =
                down_at + ((o->b - down_at + q->probe_interval_ms - 1) / q->probe_interval_ms) *
                              q->probe_interval_ms;
            if (t < up_at)
                return (probe_view){1, q->probe_k, down_at};
            continue;
        }
        for (int k = 0; k < q->probe_k; k++) {
            int64_t start = p1 + k * step;
            if (start < o->b && t >= start + q->probe_timeout_ms)
                fails++;
        }
        /* the streak holds until the retry after the last failure succeeds */
        if (fails > 0 && t < p1 + (fails - 1) * step + q->probe_timeout_ms + q->probe_retry_ms)
            v.consecutive = fails;
    }
    return v;
}

/* ---- placement policies ----------------------------------------------------- */

static int excluded(const job *j, int p)
{
    for (int i = 0; i < j->n_excl; i++)
        if (j->excl[i] == p)
            return 1;
    return 0;
}

static int available(const sim *s, const job *j, int p, int64_t t)
{
    const provider *pr = &s->prov[p];
    return pr->free >= j->devices && pr->ejected_until <= t && !excluded(j, p);
}

static int64_t run_ms(const provider *p, const job *j)
{
    __int128 den = (__int128)p->rate[j->profile] * j->devices;
    return (int64_t)(((__int128)j->work_mcu * HOUR + den - 1) / den);
}

static int64_t price_of(const provider *p, const job *j)
{
    int64_t dev_ms = 0, total = 0;
    if (money_mul_i64(run_ms(p, j), j->devices, &dev_ms) != MONEY_OK ||
        money_mul_ratio(dev_ms, p->price_dev_h, HOUR, &total) != MONEY_OK)
        return INT64_MAX;
    return total;
}

static int pick_rr(sim *s, const job *j, int64_t t)
{
    for (size_t k = 0; k < s->n_prov; k++) {
        int p = (int)((s->rr_next + k) % s->n_prov);
        if (available(s, j, p, t)) {
            s->rr_next = (size_t)p + 1;
            return p;
        }
    }
    return -1;
}

static int pick_geo(const sim *s, const job *j, int64_t t)
{
    int best = -1;
    double best_rtt = 0;
    for (size_t p = 0; p < s->n_prov; p++) {
        double r = rtt(s, j->user, s->prov[p].region);
        if (available(s, j, (int)p, t) && (best < 0 || r < best_rtt))
            best = (int)p, best_rtt = r;
    }
    return best;
}

static int pick_cost(const sim *s, const job *j, int64_t t)
{
    int best = -1;
    int64_t best_price = 0;
    for (size_t p = 0; p < s->n_prov; p++) {
        int64_t c = price_of(&s->prov[p], j);
        if (available(s, j, (int)p, t) && (best < 0 || c < best_price))
            best = (int)p, best_price = c;
    }
    return best;
}

static void fill_offer(const sim *s, const job *j, size_t p, int64_t t, sched_offer *o)
{
    const provider *pr = &s->prov[p];
    probe_view v = probe_at(s, pr, t);
    memset(o, 0, sizeof *o);
    o->id = pr->id;
    o->region = sched_latency_name(s->lat, (size_t)pr->region);
    o->device_id = pr->device;
    o->device_kind = pr->kind;
    o->devices_per_node = 8;
    o->nodes = pr->devices / 8;
    o->free_devices = available(s, j, (int)p, t) ? pr->free : 0;
    o->memory_gib = pr->mem_gib;
    o->health = v.down ? SCHED_DOWN : SCHED_UP;
    o->consecutive_failures = v.consecutive;
    /* the prober sees the region RTT plus the last-mile delay */
    o->srtt_ms = rtt(s, s->probe_region, pr->region) + pr->extra_ms;
    o->rate_mcu_per_device_hour = pr->rate[j->profile];
    o->price_micro_per_device_hour = pr->price_dev_h;
}

static int pick_tally(sim *s, const job *j, int64_t t)
{
    sched_job sj = {0};
    sched_input in = {0};
    int best = -1;

    for (size_t p = 0; p < s->n_prov; p++)
        fill_offer(s, j, p, t, &s->offers[p]);
    sj.work_mcu = j->work_mcu;
    sj.devices = j->devices;
    sj.data_region = sched_latency_name(s->lat, (size_t)j->user);
    sj.start_ms = t;
    in.offers = s->offers;
    in.n_offers = s->n_prov;
    in.job = &sj;
    in.weights.latency_micro_per_ms =
        (int64_t)((__int128)j->ref_cost * s->par->weight_ppm_per_ms / 1000000);
    in.weights.risk_per_failure_ppm = 250000;
    in.weights.cost_slack_ppm = s->par->slack_ppm;
    in.model.matrix = s->lat;
    in.model.probe_region = sched_latency_name(s->lat, (size_t)s->probe_region);
    in.model.unknown_ms = 500.0;
    if (sched_place(&in, &s->res, NULL, 0) != 0)
        return -1;
    if (s->res.n_ranked > 0)
        best = (int)s->res.ranked[0].offer_index;
    return best;
}

static int pick(sim *s, const job *j, int64_t t)
{
    switch (s->policy) {
    case POL_RR:
        return pick_rr(s, j, t);
    case POL_GEO:
        return pick_geo(s, j, t);
    case POL_COST:
        return pick_cost(s, j, t);
    default:
        return pick_tally(s, j, t);
    }
}

/* ---- events ------------------------------------------------------------------ */

static void note_recovered(sim *s, job *j, int64_t t)
{
    if (j->disrupted_at < 0)
        return;
    s->recovery_s_sum += (double)(t - j->disrupted_at) / 1000.0;
    s->recoveries++;
    j->disrupted_at = -1;
}

static void exclude(job *j, int p)
{
    if (j->n_excl < MAX_EXCLUDED)
        j->excl[j->n_excl++] = p;
}

/* An outage hit j at `since`; the system noticed and routed it elsewhere at
 * `acted` (the recovery time); the delay lasts until it runs again. */
static void disrupt(sim *s, job *j, int64_t since, int64_t acted)
{
    s->route_s_sum += (double)(acted - since) / 1000.0;
    s->routes++;
    if (!j->delayed)
        s->delayed++;
    j->delayed = 1;
    if (j->disrupted_at < 0)
        j->disrupted_at = since;
}

static int try_place(sim *s, int ji, int64_t t)
{
    job *j = &s->jobs[ji];
    int p = pick(s, j, t);
    provider *pr;
    if (p < 0) { /* no room anywhere: wait, or give up */
        if (t >= j->give_up) {
            j->st = J_FAILED;
            s->failed++;
            return 0;
        }
        return heap_push(&s->h, t + s->par->wait_retry_ms, EV_RETRY, ji, 0);
    }
    pr = &s->prov[p];
    if (is_down(pr, t)) { /* the start times out; avoid it for a while */
        disrupt(s, j, t, t + s->par->start_timeout_ms);
        exclude(j, p);
        pr->ejected_until = t + s->par->start_timeout_ms + s->par->eject_ms;
        return heap_push(&s->h, t + s->par->start_timeout_ms, EV_RETRY, ji, 0);
    }
    note_recovered(s, j, t);
    pr->free -= j->devices;
    j->st = J_RUNNING;
    j->prov = p;
    j->exec++;
    j->run_start = t;
    j->price = price_of(pr, j);
    j->run_end = t + run_ms(pr, j);
    return heap_push(&s->h, j->run_end, EV_FINISH, ji, j->exec);
}

/* Provider p dies at t: its running jobs are lost; their loss is noticed by
 * the heartbeat lease, or (tally) by the probes when they are faster. */
static int outage_start(sim *s, int p, int64_t t)
{
    provider *pr = &s->prov[p];
    int64_t seen = t + s->par->lease_ms;
    for (size_t k = 0; s->policy == POL_TALLY && k < pr->n_out; k++) {
        int64_t p1, down_at = pr->out[k].a == t ? probe_down_at(s, pr, &pr->out[k], &p1) : -1;
        if (down_at >= 0 && down_at < seen)
            seen = down_at;
    }
    for (size_t i = 0; i < s->n_jobs; i++) {
        job *j = &s->jobs[i];
        if (j->st != J_RUNNING || j->prov != p)
            continue;
        /* work done so far is paid for and lost */
        j->cost += (int64_t)((__int128)j->price * (t - j->run_start) / (j->run_end - j->run_start));
        pr->free += j->devices;
        j->st = J_NEW;
        j->exec++;
        disrupt(s, j, t, seen);
        exclude(j, p);
        j->give_up = seen + s->par->max_wait_ms;
        if (heap_push(&s->h, seen, EV_DETECT, (int)i, p) != 0)
            return -1;
    }
    return 0;
}

static int handle(sim *s, const event *e)
{
    job *j = e->kind == EV_OUT_START ? NULL : &s->jobs[e->a];
    switch (e->kind) {
    case EV_ARRIVE:
        j->give_up = e->t + s->par->max_wait_ms;
        return try_place(s, e->a, e->t);
    case EV_RETRY:
        return try_place(s, e->a, e->t);
    case EV_DETECT:
        s->prov[e->b].ejected_until = e->t + s->par->eject_ms;
        return try_place(s, e->a, e->t);
    case EV_FINISH:
        if (j->st != J_RUNNING || j->exec != e->b)
            return 0; /* an execution an outage already ended */
        s->prov[j->prov].free += j->devices;
        j->st = J_DONE;
        j->cost += j->price;
        j->latency_ms = rtt(s, j->user, s->prov[j->prov].region) + s->prov[j->prov].extra_ms;
        return 0;
    case EV_OUT_START:
        return outage_start(s, e->a, e->t);
    }
    return 0;
}

/* ---- one policy run ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static json_t *summarise(const sim *s)
{
    double *lat = malloc((s->n_jobs + 1) * sizeof *lat), sum = 0.0;
    size_t n = 0;
    int64_t cost = 0;
    char money_text[MONEY_FMT_MAX];
    json_t *o;
    if (!lat)
        return NULL;
    for (size_t i = 0; i < s->n_jobs; i++) {
        money_add_i64(cost, s->jobs[i].cost, &cost);
        if (s->jobs[i].st == J_DONE)
            sum += (lat[n++] = s->jobs[i].latency_ms);
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    money_format(cost, money_text, sizeof money_text);
    o = json_pack("{s:f, s:f, s:s, s:I, s:I, s:I, s:f, s:f}", "mean_latency_ms",
                  n ? round(sum / (double)n * 100.0) / 100.0 : 0.0, "p95_latency_ms",
                  n ? round(lat[(size_t)ceil(0.95 * (double)n) - 1] * 100.0) / 100.0 : 0.0,
                  "total_cost", money_text, "failed_jobs", (json_int_t)s->failed, "delayed_jobs",
                  (json_int_t)s->delayed, "completed_jobs", (json_int_t)n, "mean_recovery_s",
                  s->routes ? round(s->route_s_sum / (double)s->routes * 10.0) / 10.0 : 0.0,
                  "mean_restart_delay_s",
                  s->recoveries ? round(s->recovery_s_sum / (double)s->recoveries * 10.0) / 10.0
                                : 0.0);
    json_object_set_new(o, "total_cost_micro", json_integer(cost));
    free(lat);
    return o;
}

/* Run one policy on a fresh copy of the world. */
static json_t *run_policy(const sim *world, int policy, int64_t *cost_out, double *lat_out)
{
    sim s = *world;
    json_t *out = NULL;
    s.policy = policy;
    s.prov = malloc(world->n_prov * sizeof *s.prov);
    s.jobs = malloc(world->n_jobs * sizeof *s.jobs);
    s.offers = malloc(world->n_prov * sizeof *s.offers);
    memset(&s.h, 0, sizeof s.h);
    if (!s.prov || !s.jobs || !s.offers)
        goto done;
    memcpy(s.prov, world->prov, world->n_prov * sizeof *s.prov);
    memcpy(s.jobs, world->jobs, world->n_jobs * sizeof *s.jobs);
    for (size_t i = 0; i < s.n_jobs; i++)
        if (heap_push(&s.h, s.jobs[i].arrive, EV_ARRIVE, (int)i, 0) != 0)
            goto done;
    for (size_t p = 0; p < s.n_prov; p++)
        for (size_t k = 0; k < s.prov[p].n_out; k++)
            if (heap_push(&s.h, s.prov[p].out[k].a, EV_OUT_START, (int)p, 0) != 0)
                goto done;
    while (s.h.n > 0) {
        event e = heap_pop(&s.h);
        if (handle(&s, &e) != 0)
            goto done;
    }
    out = summarise(&s);
    if (out) {
        *cost_out = json_integer_value(json_object_get(out, "total_cost_micro"));
        *lat_out = json_real_value(json_object_get(out, "mean_latency_ms"));
    }
done:
    free(s.prov);
    free(s.jobs);
    free(s.offers);
    free(s.h.v);
    sched_result_free(&s.res);
    return out;
}

/* ---- command line --------------------------------------------------------------- */

typedef struct {
    const char *latency, *catalog;
    long jobs;
    unsigned long long seed;
    long weight_ppm, slack_ppm;
} place_opts;

static int parse_opts(int argc, char **argv, place_opts *o)
{
    static const struct option opts[] = {{"latency", required_argument, 0, 'l'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"seed", required_argument, 0, 's'},
                                         {"catalog", required_argument, 0, 'c'},
                                         {"weight-ppm", required_argument, 0, 'w'},
                                         {"slack-ppm", required_argument, 0, 'k'},
                                         {0, 0, 0, 0}};
    char *end;
    int c;
    *o = (place_opts){NULL, TALLY_DEFAULT_CATALOG, 2000, 1, 1000, 0};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l')
            o->latency = optarg;
        else if (c == 'c')
            o->catalog = optarg;
        else if (c == 'j' && (o->jobs = strtol(optarg, &end, 10)) > 0 && !*end &&
                 o->jobs <= 1000000)
            continue;
        else if (c == 's' && (o->seed = strtoull(optarg, &end, 10), !*end))
            continue;
        else if (c == 'w' && (o->weight_ppm = strtol(optarg, &end, 10)) >= 0 && !*end)
            continue;
        else if (c == 'k' && (o->slack_ppm = strtol(optarg, &end, 10)) >= 0 && !*end)
            continue;
        else
            return -1;
    }
    return o->latency ? 0 : -1;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL)
        *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static json_t *comparison(const int64_t cost[POL_COUNT], const double lat[POL_COUNT])
{
    double vs_rr = lat[POL_RR] > 0 ? 100.0 * (1.0 - lat[POL_TALLY] / lat[POL_RR]) : 0.0;
    double vs_geo = lat[POL_GEO] > 0 ? 100.0 * (1.0 - lat[POL_TALLY] / lat[POL_GEO]) : 0.0;
    double vs_cost =
        cost[POL_COST] > 0 ? 100.0 * ((double)cost[POL_TALLY] / (double)cost[POL_COST] - 1.0) : 0.0;
    return json_pack("{s:f, s:f, s:f, s:{s:f, s:f, s:f}}",
                     "tally_latency_reduction_vs_round_robin_pct", round(vs_rr * 10.0) / 10.0,
                     "tally_latency_reduction_vs_static_geo_pct", round(vs_geo * 10.0) / 10.0,
                     "tally_cost_vs_cost_only_pct", round(vs_cost * 100.0) / 100.0, "goal",
                     "vs_round_robin_pct", 42.3, "vs_static_geo_pct", 28.7,
                     "max_cost_over_cost_only_pct", 5.0);
}

static sim_params default_params(long weight_ppm, long slack_ppm)
{
    sim_params p = {30 * SEC, 60 * SEC, 300 * SEC, 60 * SEC,   1800 * SEC, 30 * SEC,
                    1 * SEC,  2 * SEC,  3,         weight_ppm, slack_ppm};
    return p;
}

int eval_placement(int argc, char **argv)
{
    place_opts o;
    sim_params par;
    sim world = {0};
    cat_catalog *cat = NULL;
    cat_error cerr;
    cu_profile prof[2];
    int64_t ref_rate[2], horizon = 0, cost[POL_COUNT];
    double lat_mean[POL_COUNT];
    uint64_t rng;
    size_t len = 0, outages = 0;
    char err[256], *text = NULL, *dump;
    json_t *out = NULL, *pols;
    int rc = 1;

    if (parse_opts(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: tally-eval placement --latency FILE [--jobs N] [--seed S] "
                        "[--catalog FILE] [--weight-ppm W] [--slack-ppm K]\n");
        return 2;
    }
    par = default_params(o.weight_ppm, o.slack_ppm);
    rng = (uint64_t)o.seed;
    if (!(text = read_all(o.latency, &len)) ||
        !(world.lat = sched_latency_parse(text, len, err, sizeof err))) {
        fprintf(stderr, "tally-eval placement: %s: %s\n", o.latency, text ? err : "cannot read");
        goto done;
    }
    if (!(cat = cat_load_file(o.catalog, &cerr))) {
        fprintf(stderr, "tally-eval placement: %s: %s\n", o.catalog, cerr.message);
        goto done;
    }
    cu_profile_named("llm-decode", &prof[0]);
    cu_profile_named("llm-train", &prof[1]);
    world.par = &par;
    world.probe_region = sched_latency_find(world.lat, "us-east-1");
    if (world.probe_region < 0)
        world.probe_region = 0;
    world.prov = calloc(MAX_PROVIDERS, sizeof *world.prov);
    world.n_jobs = (size_t)o.jobs;
    world.jobs = calloc(world.n_jobs, sizeof *world.jobs);
    if (!world.prov || !world.jobs || make_providers(&world, cat, prof, &rng, ref_rate) <= 0 ||
        make_jobs(&world, &rng, ref_rate, &horizon) != 0) {
        fprintf(stderr, "tally-eval placement: cannot build the simulation\n");
        goto done;
    }
    for (size_t p = 0; p < world.n_prov; p++) {
        make_outages(&world.prov[p], &rng, horizon);
        outages += world.prov[p].n_out;
    }
    pols = json_object();
    out = json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:f, s:o}", "jobs", (json_int_t)o.jobs, "seed",
                    (json_int_t)o.seed, "latency_file", o.latency, "regions",
                    (json_int_t)sched_latency_count(world.lat), "providers",
                    (json_int_t)world.n_prov, "outages", (json_int_t)outages, "simulated_hours",
                    round((double)horizon / 3600000.0 * 10.0) / 10.0, "policies", pols);
    for (int p = 0; p < POL_COUNT; p++) {
        json_t *r = run_policy(&world, p, &cost[p], &lat_mean[p]);
        if (!r)
            goto done;
        json_object_set_new(pols, policy_names[p], r);
    }
    json_object_set_new(out, "tally_weight_ppm_per_ms", json_integer(o.weight_ppm));
    json_object_set_new(out, "tally_cost_slack_ppm", json_integer(o.slack_ppm));
    json_object_set_new(out, "comparison", comparison(cost, lat_mean));
    dump = json_dumps(out, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (dump) {
        printf("%s\n", dump);
        free(dump);
        rc = 0;
    }
done:
    json_decref(out);
    free(world.prov);
    free(world.jobs);
    sched_latency_free((sched_latency *)world.lat);
    cat_free(cat);
    free(text);
    return rc;
}
