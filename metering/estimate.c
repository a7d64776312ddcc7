/*
 * estimate.c - online duration estimation: per-key rings of recent jobs, a
 * global ring and a global residual histogram.
 *
 * Representation: an open-addressing hash table of est_entry (key 0 marks an
 * empty slot; capacity a power of two, load <= 1/2, linear probing), plus a
 * global est_entry (its key is 0) and a histogram of log residuals that is
 * halved whenever it reaches EST_HIST_HALVE jobs, so it forgets old regimes.
 * Invariant: entry rings hold min(n, EST_RING) valid samples ending at
 * head - 1; every stored second count is in [0, EST_MAX_SECONDS].
 * Floating point is used only for ln/exp of residuals, each rounded once to
 * an integer (milli-nepers, seconds) at the point of use.
 */
#include "estimate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EST_HIST_HALVE 20000u
#define EST_BIN_MNP 50

struct est_state {
    est_params p;
    est_entry *tab;
    size_t cap, n;
    est_entry global;
    uint32_t hist[EST_HIST_BINS];
    uint32_t hist_total;
};

const char *est_status_code(est_status s)
{
    static const char *const codes[] = {"ok", "invalid", "negative_value", "out_of_range",
                                        "out_of_memory"};
    return (unsigned)s <= EST_ERR_NOMEM ? codes[s] : "unknown";
}

est_params est_params_default(void)
{
    return (est_params){.window = 3,
                        .min_resid = 16,
                        .quantile_ppm = 900000,
                        .p90_margin_mnp = 0,
                        .cold_p90_mnp = 693,
                        .cap_slack_ppm = 100000};
}

est_state *est_new(const est_params *params)
{
    est_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->p = params ? *params : est_params_default();
    if (st->p.window == 0 || st->p.window > EST_RING)
        st->p.window = EST_RING;
    st->cap = 64;
    st->tab = calloc(st->cap, sizeof *st->tab);
    if (!st->tab) {
        free(st);
        return NULL;
    }
    return st;
}

void est_free(est_state *st)
{
    if (!st)
        return;
    free(st->tab);
    free(st);
}

/* ---- keys ------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

uint64_t est_key(const char *tenant, const char *job_class, const char *device_class)
{
    const char *parts[3] = {tenant, job_class, device_class};
    uint64_t h = UINT64_C(14695981039346656037);
    for (int i = 0; i < 3; i++) {
        const char *s = parts[i] ? parts[i] : "";
        h = fnv(h, s, strlen(s));
        h = fnv(h, "\x1f", 1); /* unit separator: ("ab","c") != ("a","bc") */
    }
    return h ? h : 1;
}

uint64_t est_key_mix(uint64_t key, int64_t value)
{
    uint64_t h = fnv(key, &value, sizeof value);
    return h ? h : 1;
}

/* ---- table ------------------------------------------------------------ */

static size_t slot_of(const est_state *st, uint64_t key)
{
    size_t i = (size_t)(key * UINT64_C(0x9E3779B97F4A7C15) >> 17) & (st->cap - 1);
    while (st->tab[i].key != 0 && st->tab[i].key != key)
        i = (i + 1) & (st->cap - 1);
    return i;
}

static const est_entry *find(const est_state *st, uint64_t key)
{
    if (key == 0)
        return NULL;
    const est_entry *e = &st->tab[slot_of(st, key)];
    return e->key == key ? e : NULL;
}

static int grow(est_state *st)
{
    est_entry *old = st->tab;
    size_t old_cap = st->cap;
    est_entry *tab = calloc(old_cap * 2, sizeof *tab);
    if (!tab)
        return -1;
    st->tab = tab;
    st->cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key != 0)
            st->tab[slot_of(st, old[i].key)] = old[i];
    free(old);
    return 0;
}

static est_entry *find_or_add(est_state *st, uint64_t key)
{
    if ((st->n + 1) * 2 > st->cap && grow(st) != 0)
        return NULL;
    est_entry *e = &st->tab[slot_of(st, key)];
    if (e->key == 0) {
        memset(e, 0, sizeof *e);
        e->key = key;
        st->n++;
    }
    return e;
}

/* ---- statistics over a ring -------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static uint32_t ring_len(const est_entry *e)
{
    return e->n < EST_RING ? e->n : EST_RING;
}

/* The k-th most recent slot (k = 0 newest). */
static uint32_t ring_idx(const est_entry *e, uint32_t k)
{
    return (e->head + EST_RING - 1 - k) % EST_RING;
}

/* Median over the last `window` jobs of each one's actual time rescaled to
 * this job's reference (actual x ref / its ref), or its actual time when
 * either reference is unknown. */
static int64_t ring_median(const est_entry *e, int64_t ref, uint32_t window)
{
    int64_t v[EST_RING] = {0};
    uint32_t m = ring_len(e) < window ? ring_len(e) : window;
    if (m == 0)
        return 0;
    for (uint32_t k = 0; k < m; k++) {
        uint32_t i = ring_idx(e, k);
        if (ref > 0 && e->ref_s[i] > 0) {
            __int128 x = (__int128)e->actual_s[i] * ref;
            v[k] = (int64_t)((x + e->ref_s[i] / 2) / e->ref_s[i]);
        } else {
            v[k] = e->actual_s[i];
        }
    }
    qsort(v, m, sizeof v[0], cmp_i64);
    return m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2] + 1) / 2;
}

/* Upper quantile of the ring's residuals (nearest rank). */
static int32_t ring_quantile(const est_entry *e, uint32_t q_ppm)
{
    int64_t v[EST_RING] = {0};
    uint32_t m = ring_len(e);
    if (m == 0)
        return 0;
    for (uint32_t k = 0; k < m; k++)
        v[k] = e->resid_mnp[k];
    qsort(v, m, sizeof v[0], cmp_i64);
    uint64_t rank = ((uint64_t)q_ppm * m + 999999) / 1000000;
    return (int32_t)v[rank > 0 ? rank - 1 : 0];
}

static int32_t hist_quantile(const est_state *st, uint32_t q_ppm)
{
    uint64_t need = ((uint64_t)q_ppm * st->hist_total + 999999) / 1000000, seen = 0;
    for (int b = 0; b < EST_HIST_BINS; b++) {
        seen += st->hist[b];
        if (seen >= need && seen > 0)
            return EST_HIST_LO_MNP + (b + 1) * EST_BIN_MNP;
    }
    return EST_HIST_LO_MNP + EST_HIST_BINS * EST_BIN_MNP;
}

/* ---- predict ------------------------------------------------------------ */

static est_status check_query(const est_query *q)
{
    if (!q)
        return EST_ERR_INVALID;
    if (q->prior_s < 0 || q->user_s < 0 || q->cap_s < 0)
        return EST_ERR_NEGATIVE;
    if (q->prior_s > EST_MAX_SECONDS || q->user_s > EST_MAX_SECONDS || q->cap_s > EST_MAX_SECONDS)
        return EST_ERR_RANGE;
    return EST_OK;
}

/* Point estimate and the entry whose residuals should shape p90. */
static const est_entry *point(const est_state *st, const est_query *q, est_result *r)
{
    int64_t ref = q->prior_s > 0 ? q->prior_s : q->user_s;
    for (int l = 0; l < EST_LEVELS; l++) {
        const est_entry *e = find(st, q->keys[l]);
        if (e && e->n > 0) {
            r->p50_s = ring_median(e, ref, st->p.window);
            r->evidence = EST_EVIDENCE_HISTORY;
            r->level = l;
            r->n_history = e->n;
            return e;
        }
    }
    r->level = -1;
    if (q->prior_s > 0) {
        r->p50_s = q->prior_s;
        r->evidence = EST_EVIDENCE_PRIOR;
    } else if (q->user_s > 0) {
        r->p50_s = st->global.n ? ring_median(&st->global, q->user_s, EST_RING) : q->user_s;
        r->evidence = EST_EVIDENCE_USER;
        r->n_history = st->global.n;
    } else if (st->global.n > 0) {
        r->p50_s = ring_median(&st->global, 0, EST_RING);
        r->evidence = EST_EVIDENCE_HISTORY;
        r->level = EST_LEVELS;
        r->n_history = st->global.n;
    }
    return NULL;
}

static int64_t scale_exp(int64_t s, int32_t mnp)
{
    double v = (double)s * exp(mnp / 1000.0);
    return v >= (double)EST_MAX_SECONDS ? EST_MAX_SECONDS : (int64_t)llround(v);
}

est_status est_predict(const est_state *st, const est_query *q, est_result *out)
{
    est_status rc;
    est_result r = {0};
    if (!st || !out)
        return EST_ERR_INVALID;
    if ((rc = check_query(q)) != EST_OK)
        return rc;
    const est_entry *e = point(st, q, &r);
    if (q->cap_s > 0 && r.p50_s > q->cap_s)
        r.p50_s = q->cap_s;
    if (r.evidence != EST_EVIDENCE_NONE && r.p50_s < 1)
        r.p50_s = 1;
    int32_t resid = st->hist_total > 0 ? hist_quantile(st, st->p.quantile_ppm) : st->p.cold_p90_mnp;
    if (e && ring_len(e) > 0 && st->p.min_resid > 0) {
        /* Shrink the key's own quantile towards the global one: weight
         * m / (m + min_resid) for a key with m residuals. */
        int64_t m = ring_len(e), k0 = st->p.min_resid;
        int64_t own = ring_quantile(e, st->p.quantile_ppm);
        resid = (int32_t)((own * m + (int64_t)resid * k0) / (m + k0));
    }
    resid += st->p.p90_margin_mnp;
    r.p90_s = scale_exp(r.p50_s, resid > 0 ? resid : 0);
    int64_t cap90 = q->cap_s + (int64_t)((__int128)q->cap_s * st->p.cap_slack_ppm / 1000000);
    if (q->cap_s > 0 && r.p90_s > cap90)
        r.p90_s = cap90 > r.p50_s ? cap90 : r.p50_s;
    *out = r;
    return EST_OK;
}

/* ---- learn --------------------------------------------------------------- */

static void push(est_entry *e, int64_t actual, int64_t ref, int32_t resid)
{
    e->actual_s[e->head] = actual;
    e->ref_s[e->head] = ref;
    e->resid_mnp[e->head] = resid;
    e->head = (e->head + 1) % EST_RING;
    if (e->n < UINT32_MAX)
        e->n++;
}

static void hist_add(est_state *st, int32_t resid)
{
    int b = (resid - EST_HIST_LO_MNP) / EST_BIN_MNP;
    b = b < 0 ? 0 : b >= EST_HIST_BINS ? EST_HIST_BINS - 1 : b;
    st->hist[b]++;
    if (++st->hist_total >= EST_HIST_HALVE) {
        st->hist_total = 0;
        for (int i = 0; i < EST_HIST_BINS; i++)
            st->hist_total += st->hist[i] /= 2;
    }
}

est_status est_learn(est_state *st, const est_query *q, int64_t predicted_p50_s, int64_t actual_s)
{
    est_status rc;
    if (!st)
        return EST_ERR_INVALID;
    if ((rc = check_query(q)) != EST_OK)
        return rc;
    if (actual_s < 0 || predicted_p50_s < 0)
        return EST_ERR_NEGATIVE;
    if (actual_s > EST_MAX_SECONDS || predicted_p50_s > EST_MAX_SECONDS)
        return EST_ERR_RANGE;
    int64_t ref = q->prior_s > 0 ? q->prior_s : q->user_s;
    double lr = log((double)(actual_s > 0 ? actual_s : 1) /
                    (double)(predicted_p50_s > 0 ? predicted_p50_s : 1));
    int32_t resid = (int32_t)lround(lr * 1000.0);
    for (int l = 0; l < EST_LEVELS; l++) {
        int dup = 0;
        for (int m = 0; m < l; m++)
            dup |= q->keys[m] == q->keys[l];
        if (q->keys[l] == 0 || dup)
            continue;
        est_entry *e = find_or_add(st, q->keys[l]);
        if (!e)
            return EST_ERR_NOMEM;
        push(e, actual_s, ref, resid);
    }
    push(&st->global, actual_s, ref, resid);
    hist_add(st, resid);
    return EST_OK;
}

/* ---- persistence ------------------------------------------------------- */

size_t est_entry_count(const est_state *st)
{
    return st->n;
}

const est_entry *est_entry_at(const est_state *st, size_t i)
{
    for (size_t k = 0; k < st->cap; k++)
        if (st->tab[k].key != 0 && i-- == 0)
            return &st->tab[k];
    return NULL;
}

json_t *est_entry_to_json(const est_entry *e)
{
    json_t *a = json_array(), *r = json_array(), *s = json_array();
    for (uint32_t i = 0; a && r && s && i < EST_RING; i++) {
        json_array_append_new(a, json_integer(e->actual_s[i]));
        json_array_append_new(r, json_integer(e->ref_s[i]));
        json_array_append_new(s, json_integer(e->resid_mnp[i]));
    }
    char key[17];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)e->key);
    return json_pack("{s:i, s:s, s:I, s:I, s:o, s:o, s:o}", "format", EST_FORMAT_VERSION, "key",
                     key, "n", (json_int_t)e->n, "head", (json_int_t)e->head, "actual_s", a,
                     "ref_s", r, "resid_mnp", s);
}

static int ints_from(const json_t *arr, int64_t lo, int64_t hi, int64_t *out)
{
    if (!json_is_array(arr) || json_array_size(arr) != EST_RING)
        return -1;
    for (size_t i = 0; i < EST_RING; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
            return -1;
        out[i] = (int64_t)json_integer_value(v);
    }
    return 0;
}

est_status est_entry_from_json(const json_t *j, est_entry *out)
{
    est_entry e = {0};
    int64_t resid[EST_RING];
    const char *key = json_string_value(json_object_get(j, "key"));
    const json_t *n = json_object_get(j, "n"), *head = json_object_get(j, "head");
    char *end = NULL;
    if (!key || strlen(key) != 16 || json_integer_value(json_object_get(j, "format")) != 1 ||
        !json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > UINT32_MAX ||
        !json_is_integer(head) || json_integer_value(head) < 0 ||
        json_integer_value(head) >= EST_RING)
        return EST_ERR_INVALID;
    e.key = strtoull(key, &end, 16);
    if (*end != '\0' || e.key == 0 ||
        ints_from(json_object_get(j, "actual_s"), 0, EST_MAX_SECONDS, e.actual_s) ||
        ints_from(json_object_get(j, "ref_s"), 0, EST_MAX_SECONDS, e.ref_s) ||
        ints_from(json_object_get(j, "resid_mnp"), -1000000, 1000000, resid))
        return EST_ERR_INVALID;
    for (int i = 0; i < EST_RING; i++)
        e.resid_mnp[i] = (int32_t)resid[i];
    e.n = (uint32_t)json_integer_value(n);
    e.head = (uint32_t)json_integer_value(head);
    *out = e;
    return EST_OK;
}

est_status est_restore_entry(est_state *st, const est_entry *e)
{
    if (!st || !e || e->key == 0 || e->head >= EST_RING)
        return EST_ERR_INVALID;
    est_entry *slot = find_or_add(st, e->key);
    if (!slot)
        return EST_ERR_NOMEM;
    *slot = *e;
    return EST_OK;
}

json_t *est_global_to_json(const est_state *st)
{
    json_t *ring = est_entry_to_json(&st->global), *hist = json_array();
    for (int i = 0; hist && i < EST_HIST_BINS; i++)
        json_array_append_new(hist, json_integer(st->hist[i]));
    return json_pack("{s:o, s:o}", "ring", ring, "hist", hist);
}

est_status est_global_from_json(est_state *st, const json_t *j)
{
    const json_t *ring = json_object_get(j, "ring"), *hist = json_object_get(j, "hist");
    est_entry g;
    uint32_t h[EST_HIST_BINS], total = 0;
    if (!st || !json_is_array(hist) || json_array_size(hist) != EST_HIST_BINS)
        return EST_ERR_INVALID;
    /* The global ring's key is 0 in memory; on the wire it carries key 1. */
    json_t *copy = json_deep_copy(ring);
    if (!copy)
        return EST_ERR_NOMEM;
    json_object_set_new(copy, "key", json_string("0000000000000001"));
    est_status rc = est_entry_from_json(copy, &g);
    json_decref(copy);
    if (rc != EST_OK)
        return rc;
    for (int i = 0; i < EST_HIST_BINS; i++) {
        const json_t *v = json_array_get(hist, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= EST_HIST_HALVE)
            return EST_ERR_INVALID;
        h[i] = (uint32_t)json_integer_value(v);
        total += h[i];
    }
    if (total >= EST_HIST_HALVE)
        return EST_ERR_INVALID;
    g.key = 0;
    st->global = g;
    memcpy(st->hist, h, sizeof h);
    st->hist_total = total;
    return EST_OK;
}
