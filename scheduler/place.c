/*
 * place.c - the placement core: filter each offer (first failing check is
 * its reason), score the feasible ones in integer micro-units, sort.
 *
 * Invariant: every input offer ends up exactly once, either in ranked or in
 * rejected; ranked is sorted by (score, offer id, input index), a total order,
 * so the output does not depend on qsort's stability.
 */
#include "place.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

#define PPM INT64_C(1000000)
#define MS_PER_HOUR INT64_C(3600000)
#define TIME_MAX (INT64_MAX / 4) /* bound on starts and durations (ms): sums never overflow */

static const char *const reject_names[] = {
    "ok",    "down",     "blocked",  "device",      "memory",    "region",   "residency",
    "shape", "capacity", "deadline", "price_error", "price_cap", "overflow", "cost_slack"};

const char *sched_reject_name(sched_reject r)
{
    if ((size_t)r >= sizeof reject_names / sizeof reject_names[0])
        return "unknown";
    return reject_names[r];
}

sched_weights sched_weights_default(void)
{
    sched_weights w = {1000, 0, 250000, 0};
    return w;
}

static void put(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!buf || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

int sched_price_device_hours(void *ctx, const sched_offer *offer, const sched_job *job,
                             const sched_fit *fit, int64_t *total_micro, char *err, size_t errlen)
{
    int64_t device_ms;
    (void)ctx;
    (void)job;
    if (offer->price_micro_per_device_hour < 0) {
        put(err, errlen, "negative list price");
        return -1;
    }
    if (money_mul_i64(fit->p50_ms, fit->devices, &device_ms) != MONEY_OK ||
        money_mul_ratio(device_ms, offer->price_micro_per_device_hour, MS_PER_HOUR, total_micro) !=
            MONEY_OK) {
        put(err, errlen, "price overflows int64 micro-units");
        return -1;
    }
    return 0;
}

/* ---- latency -------------------------------------------------------------- */

/* The latency model with the data (d), prober (p) and offer (o) regions
 * resolved. */
static double latency_idx(const sched_model *m, int d, int p, int o, const sched_offer *offer)
{
    double base = sched_latency_rtt_sym(m->matrix, d, o);
    double probe_base;

    if (base < 0.0)
        return offer->srtt_ms > 0.0 ? offer->srtt_ms : m->unknown_ms;
    if (offer->srtt_ms <= 0.0)
        return base;
    probe_base = sched_latency_rtt_sym(m->matrix, p, o);
    if (probe_base < 0.0 || offer->srtt_ms <= probe_base)
        return base;
    return base + (offer->srtt_ms - probe_base);
}

double sched_latency_for(const sched_model *m, const char *data_region, const sched_offer *offer)
{
    int d = data_region ? sched_latency_find(m->matrix, data_region) : -1;
    int p = m->probe_region ? sched_latency_find(m->matrix, m->probe_region) : -1;
    return latency_idx(m, d, p, sched_latency_find(m->matrix, offer->region), offer);
}

/* Per-call context: the job's regions resolved once, and a direct-mapped
 * cache of offer region string -> matrix index (offers of one provider
 * usually share the string, so most lookups skip the name search). */
#define REGION_CACHE 64
typedef struct {
    int data_idx, probe_idx;
    const char *key[REGION_CACHE];
    int idx[REGION_CACHE];
} place_ctx;

static int region_idx(const sched_model *m, place_ctx *c, const char *region)
{
    size_t h = ((uintptr_t)region >> 3) % REGION_CACHE;
    if (c->key[h] != region) {
        c->key[h] = region;
        c->idx[h] = sched_latency_find(m->matrix, region);
    }
    return c->idx[h];
}

/* ---- filters ------------------------------------------------------------- */

static int in_list(const char *const *list, const char *s)
{
    for (; list && *list; list++)
        if (s && strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static int has_tag(const sched_offer *o, const char *tag)
{
    for (size_t i = 0; i < SCHED_MAX_TAGS && o->tags[i]; i++)
        if (strcmp(o->tags[i], tag) == 0)
            return 1;
    return 0;
}

/* Missing residency tag of the job on the offer, or NULL when all are there. */
static const char *missing_tag(const sched_offer *o, const sched_job *j)
{
    for (size_t i = 0; i < SCHED_MAX_TAGS && j->tags[i]; i++)
        if (!has_tag(o, j->tags[i]))
            return j->tags[i];
    return NULL;
}

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Static checks that need no duration or price. */
static sched_reject check_static(const sched_offer *o, const sched_job *j, char *why, size_t cap)
{
    const char *tag;
    if (o->health == SCHED_DOWN) {
        put(why, cap, "offer is down (%d consecutive probe failures)",
            (int)o->consecutive_failures);
        return SCHED_REJ_DOWN;
    }
    if (in_list(j->blocked, o->id)) {
        put(why, cap, "offer is on the job's blocked list");
        return SCHED_REJ_BLOCKED;
    }
    if (j->device_id && !streq(j->device_id, o->device_id)) {
        put(why, cap, "device %s, job needs %s", o->device_id ? o->device_id : "?", j->device_id);
        return SCHED_REJ_DEVICE;
    }
    if (!j->device_id && j->device_kind && !streq(j->device_kind, o->device_kind)) {
        put(why, cap, "device kind %s, job needs %s", o->device_kind ? o->device_kind : "?",
            j->device_kind);
        return SCHED_REJ_DEVICE;
    }
    if (o->memory_gib < j->min_memory_gib) {
        put(why, cap, "%lld GiB per device, job needs %lld", (long long)o->memory_gib,
            (long long)j->min_memory_gib);
        return SCHED_REJ_MEMORY;
    }
    if (j->allowed_regions && !in_list(j->allowed_regions, o->region)) {
        put(why, cap, "region %s is not in the job's allowed regions", o->region);
        return SCHED_REJ_REGION;
    }
    if ((tag = missing_tag(o, j)) != NULL) {
        put(why, cap, "no residency tag '%s'", tag);
        return SCHED_REJ_RESIDENCY;
    }
    return SCHED_OK;
}

static sched_reject check_capacity(const sched_offer *o, const sched_job *j, char *why, size_t cap)
{
    int64_t per = o->devices_per_node;
    if (per <= 0 || o->nodes <= 0 || (__int128)j->devices > (__int128)per * o->nodes ||
        (j->devices > per && j->devices % per != 0)) {
        put(why, cap, "%lld devices do not fit %lld nodes x %lld devices (whole nodes beyond one)",
            (long long)j->devices, (long long)o->nodes, (long long)per);
        return SCHED_REJ_SHAPE;
    }
    if (o->free_devices < j->devices) {
        put(why, cap, "%lld devices free for the window, job needs %lld",
            (long long)o->free_devices, (long long)j->devices);
        return SCHED_REJ_CAPACITY;
    }
    return SCHED_OK;
}

/* Durations on this offer; SCHED_REJ_OVERFLOW on absurd numbers. */
static sched_reject fit_durations(const sched_offer *o, const sched_job *j, sched_fit *f, char *why,
                                  size_t cap)
{
    f->devices = j->devices;
    f->start_ms = o->available_from_ms > j->start_ms ? o->available_from_ms : j->start_ms;
    if (j->work_mcu > 0 && o->rate_mcu_per_device_hour > 0) {
        __int128 den = (__int128)o->rate_mcu_per_device_hour * j->devices;
        __int128 p50 = ((__int128)j->work_mcu * MS_PER_HOUR + den - 1) / den, p90 = p50;
        if (p50 <= TIME_MAX && j->p50_ms > 0 && j->p90_ms >= j->p50_ms)
            p90 = (p50 * j->p90_ms + j->p50_ms - 1) / j->p50_ms; /* < 2^125 */
        f->p50_ms = p50 > TIME_MAX ? TIME_MAX + 1 : (int64_t)p50;
        f->p90_ms = p90 > TIME_MAX ? TIME_MAX + 1 : (int64_t)p90;
    } else if (j->work_mcu > 0) {
        put(why, cap, "no CU rate for the job's profile on %s", o->device_id ? o->device_id : "?");
        return SCHED_REJ_DEVICE;
    } else {
        f->p50_ms = j->p50_ms;
        f->p90_ms = j->p90_ms;
    }
    if (f->p90_ms > TIME_MAX || f->start_ms > TIME_MAX) { /* so start + p90 cannot overflow */
        put(why, cap, "start or duration beyond %lld ms", (long long)TIME_MAX);
        return SCHED_REJ_OVERFLOW;
    }
    return SCHED_OK;
}

static sched_reject check_deadline(const sched_job *j, const sched_fit *f, char *why, size_t cap)
{
    if (j->deadline_ms > 0 && f->start_ms > j->deadline_ms - f->p90_ms) {
        put(why, cap, "p90 finish %lld ms is %lld ms after the deadline",
            (long long)(f->start_ms + f->p90_ms),
            (long long)(f->start_ms + f->p90_ms - j->deadline_ms));
        return SCHED_REJ_DEADLINE;
    }
    return SCHED_OK;
}

/* ---- scoring ------------------------------------------------------------- */

static int32_t risk_ppm_of(const sched_offer *o, const sched_weights *w)
{
    int64_t r = (int64_t)(o->failure_ratio_ppm > 0 ? o->failure_ratio_ppm : 0) +
                (int64_t)(o->consecutive_failures > 0 ? o->consecutive_failures : 0) *
                    (int64_t)(w->risk_per_failure_ppm > 0 ? w->risk_per_failure_ppm : 0);
    return (int32_t)(r > PPM ? PPM : r);
}

static sched_reject score(const sched_input *in, place_ctx *c, const sched_offer *o,
                          sched_placement *p, char *why, size_t cap)
{
    const sched_weights *w = &in->weights;
    int64_t lat_us, exposure, sum;
    p->latency_ms =
        latency_idx(&in->model, c->data_idx, c->probe_idx, region_idx(&in->model, c, o->region), o);
    lat_us = (int64_t)llround(p->latency_ms * 1000.0);
    p->risk_ppm = risk_ppm_of(o, w);
    if (money_mul_ratio(lat_us, w->latency_micro_per_ms, 1000, &p->latency_term_micro) ||
        money_add_i64(p->price_micro, w->failure_cost_micro, &exposure) ||
        money_mul_ratio(exposure, p->risk_ppm, PPM, &p->risk_term_micro) ||
        money_add_i64(p->price_micro, p->latency_term_micro, &sum) ||
        money_add_i64(sum, p->risk_term_micro, &p->score_micro)) {
        put(why, cap, "score overflows int64 micro-units");
        return SCHED_REJ_OVERFLOW;
    }
    return SCHED_OK;
}

/* Filter and score one offer into p (feasible) or why (not). */
static sched_reject evaluate(const sched_input *in, place_ctx *c, size_t i, sched_placement *p,
                             char *why, size_t cap)
{
    const sched_offer *o = &in->offers[i];
    const sched_job *j = in->job;
    sched_price_fn price = in->price ? in->price : sched_price_device_hours;
    sched_fit f;
    sched_reject r;
    char perr[SCHED_REASON_MAX - 16];

    if ((r = check_static(o, j, why, cap)) || (r = check_capacity(o, j, why, cap)) ||
        (r = fit_durations(o, j, &f, why, cap)) || (r = check_deadline(j, &f, why, cap)))
        return r;
    perr[0] = '\0';
    if (price(in->price_ctx, o, j, &f, &p->price_micro, perr, sizeof perr) != 0) {
        put(why, cap, "cannot price: %s", perr[0] ? perr : "pricing failed");
        return SCHED_REJ_PRICE_ERROR;
    }
    if (j->max_price_micro > 0 && p->price_micro > j->max_price_micro) {
        char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
        money_format(p->price_micro, a, sizeof a);
        money_format(j->max_price_micro, b, sizeof b);
        put(why, cap, "price %s is over the cap %s", a, b);
        return SCHED_REJ_PRICE_CAP;
    }
    p->offer_index = i;
    p->devices = f.devices;
    p->start_ms = f.start_ms;
    p->finish_p50_ms = f.start_ms + f.p50_ms;
    p->finish_p90_ms = f.start_ms + f.p90_ms;
    return score(in, c, o, p, why, cap);
}

static int cmp_rejection(const void *a, const void *b)
{
    const sched_rejection *x = a, *y = b;
    return x->offer_index < y->offer_index ? -1 : x->offer_index > y->offer_index;
}

static int check_input(const sched_input *in, char *err, size_t errlen)
{
    const sched_job *j = in ? in->job : NULL;
    if (!in || !j || (in->n_offers > 0 && !in->offers)) {
        put(err, errlen, "job: required");
        return -1;
    }
    if (j->devices < 1) {
        put(err, errlen, "devices: must be >= 1");
        return -1;
    }
    if (j->work_mcu < 0 || (j->work_mcu == 0 && (j->p50_ms <= 0 || j->p90_ms < j->p50_ms))) {
        put(err, errlen, "duration: need work_mcu > 0 or 0 < p50_ms <= p90_ms");
        return -1;
    }
    if (j->max_price_micro < 0 || in->weights.latency_micro_per_ms < 0 ||
        in->weights.failure_cost_micro < 0 || in->weights.cost_slack_ppm < 0) {
        put(err, errlen, "weights: must be >= 0");
        return -1;
    }
    for (size_t i = 0; i < in->n_offers; i++)
        if (!in->offers[i].id || !in->offers[i].region || strlen(in->offers[i].id) > SCHED_ID_MAX) {
            put(err, errlen, "offers[%zu]: id and region required, id <= %d bytes", i,
                SCHED_ID_MAX);
            return -1;
        }
    return 0;
}

/* Budget rule: move placements priced over cheapest x (1 + slack) from
 * ranked to rejected (rejected stays in input order: merged by index). */
static void apply_slack(const sched_input *in, sched_result *out)
{
    int64_t cheapest = INT64_MAX, limit;
    size_t kept = 0, nrej = out->n_rejected;
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];

    if (in->weights.cost_slack_ppm <= 0 || out->n_ranked == 0)
        return;
    for (size_t i = 0; i < out->n_ranked; i++)
        if (out->ranked[i].price_micro < cheapest)
            cheapest = out->ranked[i].price_micro;
    if (money_mul_ratio(cheapest, PPM + in->weights.cost_slack_ppm, PPM, &limit) != MONEY_OK)
        return; /* the limit is beyond any price */
    money_format(cheapest, b, sizeof b);
    for (size_t i = 0; i < out->n_ranked; i++) {
        sched_placement *p = &out->ranked[i];
        sched_rejection *x;
        if (p->price_micro <= limit) {
            out->ranked[kept++] = *p;
            continue;
        }
        x = &out->rejected[out->n_rejected++];
        x->offer_index = p->offer_index;
        x->code = SCHED_REJ_COST_SLACK;
        snprintf(x->offer_id, sizeof x->offer_id, "%s", p->offer_id);
        money_format(p->price_micro, a, sizeof a);
        put(x->reason, sizeof x->reason, "price %s is more than %lld ppm over the cheapest %s", a,
            (long long)in->weights.cost_slack_ppm, b);
    }
    out->n_ranked = kept;
    if (out->n_rejected > nrej)
        qsort(out->rejected, out->n_rejected, sizeof *out->rejected, cmp_rejection);
}

/* Sort ranked through a compact key array (placements are ~200 bytes, so
 * moving keys instead of them is several times faster at 10^4 offers). */
typedef struct {
    int64_t score;
    const char *id;
    size_t index, pos;
} rank_key;

static int cmp_key(const void *a, const void *b)
{
    const rank_key *x = a, *y = b;
    int c;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    if ((c = strcmp(x->id, y->id)) != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sort keys, then permute ranked in place by following cycles. */
static void sort_ranked(sched_result *out)
{
    rank_key *k = out->keys;
    size_t n = out->n_ranked;
    if (n < 2)
        return;
    for (size_t i = 0; i < n; i++)
        k[i] = (rank_key){out->ranked[i].score_micro, out->ranked[i].offer_id,
                          out->ranked[i].offer_index, i};
    qsort(k, n, sizeof *k, cmp_key);
    /* ranked[i] must become old ranked[k[i].pos] */
    for (size_t i = 0; i < n; i++) {
        sched_placement tmp;
        size_t j = i;
        if (k[i].pos == i || k[i].pos == SIZE_MAX)
            continue;
        tmp = out->ranked[i];
        while (k[j].pos != i) {
            size_t from = k[j].pos;
            out->ranked[j] = out->ranked[from];
            k[j].pos = SIZE_MAX;
            j = from;
        }
        out->ranked[j] = tmp;
        k[j].pos = SIZE_MAX;
    }
}

/* Make room for n offers, reusing the buffers of an earlier call. */
static int reserve(sched_result *out, size_t n)
{
    out->n_ranked = out->n_rejected = 0;
    if (out->cap >= n)
        return 0;
    free(out->ranked);
    free(out->rejected);
    free(out->keys);
    out->ranked = malloc(n * sizeof *out->ranked);
    out->rejected = malloc(n * sizeof *out->rejected);
    out->keys = malloc(n * sizeof(rank_key));
    out->cap = n;
    if (out->ranked && out->rejected && out->keys)
        return 0;
    sched_result_free(out);
    return -1;
}

static void copy_id(char *dst, const char *src)
{
    size_t n = strlen(src); /* <= SCHED_ID_MAX: check_input */
    memcpy(dst, src, n + 1);
}

int sched_place(const sched_input *in, sched_result *out, char *err, size_t errlen)
{
    place_ctx c = {0};
    out->n_ranked = out->n_rejected = 0;
    if (check_input(in, err, errlen) != 0)
        return -1;
    if (in->n_offers == 0)
        return 0;
    if (reserve(out, in->n_offers) != 0) {
        put(err, errlen, "out of memory");
        return -1;
    }
    c.data_idx =
        in->job->data_region ? sched_latency_find(in->model.matrix, in->job->data_region) : -1;
    c.probe_idx =
        in->model.probe_region ? sched_latency_find(in->model.matrix, in->model.probe_region) : -1;
    for (size_t i = 0; i < in->n_offers; i++) {
        sched_placement *p = &out->ranked[out->n_ranked];
        sched_rejection *x = &out->rejected[out->n_rejected];
        sched_reject r = evaluate(in, &c, i, p, x->reason, sizeof x->reason);
        if (r == SCHED_OK) {
            copy_id(p->offer_id, in->offers[i].id);
            out->n_ranked++;
        } else {
            x->offer_index = i;
            x->code = r;
            copy_id(x->offer_id, in->offers[i].id);
            out->n_rejected++;
        }
    }
    apply_slack(in, out);
    sort_ranked(out);
    return 0;
}

void sched_result_free(sched_result *r)
{
    if (!r)
        return;
    free(r->ranked);
    free(r->rejected);
    free(r->keys);
    memset(r, 0, sizeof *r);
}
