/*
 * rate.c - the rating engine (see rate.h for the model, docs/pricing.md for
 * the worked rules).
 *
 * Invariant that makes records splittable: for every line, the period-to-date
 * amount is  round_half_even(exact(accumulator))  where the accumulator is a
 * period-to-date figure in the state (quantity for usage lines, money for
 * multiplier and fee lines), and a record is charged
 *     round(exact(acc_after)) - round(exact(acc_before)).
 * Amounts telescope: two consecutive records charge exactly what one record
 * covering both would. money_div_round is the only rounding, once per
 * (line, accumulator point).
 */
#include "rate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "money.h"

typedef __int128 i128;

#define MS_PER_DAY INT64_C(86400000)
#define MS_PER_MIN INT64_C(60000)
#define MAX_INTERVAL_MS INT64_C(3155760000000) /* 100 Julian years, as metering */

typedef enum { SRC_NONE = 0, SRC_FLAT, SRC_GRADUATED, SRC_VOLUME } src_kind;

typedef struct {
    src_kind kind;
    int rule;      /* index in policy->rules */
    int64_t price; /* SRC_FLAT */
    const pricing_rule *tiers;
    int64_t free_q, commit_q, commit_price; /* allowance, commitment */
    int64_t k;                              /* free_q + commit_q: on-demand starts here */
} unit_plan;

typedef struct {
    const pricing_policy *pol;
    const pricing_policy *plat;
    const pricing_usage *use;
    unit_plan plan[PRICING_UNIT_COUNT];
    int contract;         /* rule index of the tenant's contract, -1 none */
    int64_t commit_money; /* commitment money charged by this record */
    pricing_state st;
    pricing_result *out;
    pricing_error *err;
} ctx;

const char *pricing_line_kind_name(pricing_line_kind k)
{
    switch (k) {
    case PRICING_LINE_FREE:
        return "free_allowance";
    case PRICING_LINE_COMMITMENT:
        return "commitment";
    case PRICING_LINE_USAGE:
        return "usage";
    case PRICING_LINE_VOLUME_REPRICE:
        return "volume_reprice";
    case PRICING_LINE_WINDOW:
        return "time_window";
    case PRICING_LINE_REGION:
        return "region";
    case PRICING_LINE_DISCOUNT:
        return "contract_discount";
    case PRICING_LINE_PLATFORM_FEE:
        return "platform_fee";
    case PRICING_LINE_COMMITMENT_TRUEUP:
        return "commitment_trueup";
    case PRICING_LINE_MINIMUM:
        return "minimum_charge";
    }
    return "unknown";
}

static pricing_status failv(pricing_error *err, pricing_status code, const char *path,
                            const char *fmt, ...)
{
    if (err) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        err->code = code;
        snprintf(err->path, sizeof err->path, "%s", path);
        snprintf(err->message, sizeof err->message, "%s%s%s", path, path[0] ? ": " : "", msg);
    }
    return code;
}

static pricing_status overflow(ctx *c, const char *what)
{
    return failv(c->err, PRICING_ERR_OVERFLOW, what, "amount or quantity overflows int64");
}

/* round_half_even(num / den) into *out, or an overflow error. */
static pricing_status rnd(ctx *c, i128 num, i128 den, int64_t *out)
{
    if (money_div_round(num, den, out) != MONEY_OK)
        return overflow(c, "amount");
    return PRICING_OK;
}

static pricing_status add(ctx *c, int64_t *acc, int64_t d)
{
    if (__builtin_add_overflow(*acc, d, acc))
        return overflow(c, "amount");
    return PRICING_OK;
}

/* Difference of two rounded period-to-date amounts: round(n1/den) - round(n0/den). */
static pricing_status delta(ctx *c, i128 n0, i128 n1, i128 den, int64_t *out)
{
    int64_t a0, a1;
    pricing_status st;
    if ((st = rnd(c, n0, den, &a0)) || (st = rnd(c, n1, den, &a1)))
        return st;
    if (__builtin_sub_overflow(a1, a0, out))
        return overflow(c, "amount");
    return PRICING_OK;
}

/* ---- line items ----------------------------------------------------------- */

/* Add to the line with the same (kind, rule, detail, unit), or append one. */
static pricing_status add_line(ctx *c, pricing_line_kind kind, const pricing_policy *pol, int rule,
                               int detail, pricing_qty_unit qu, int64_t qty, int64_t unit_price,
                               int64_t amount, const char *desc)
{
    pricing_result *r = c->out;
    for (size_t i = 0; i < r->n_lines; i++) {
        pricing_line *l = &r->lines[i];
        if (l->kind == kind && l->rule_index == rule && l->detail == detail && l->qty_unit == qu &&
            l->unit_price == unit_price) {
            if (__builtin_add_overflow(l->quantity, qty, &l->quantity) ||
                __builtin_add_overflow(l->amount, amount, &l->amount))
                return overflow(c, "line");
            return PRICING_OK;
        }
    }
    if (r->n_lines == PRICING_MAX_LINES)
        return failv(c->err, PRICING_ERR_RANGE, "lines", "more than %d line items",
                     PRICING_MAX_LINES);
    pricing_line *l = &r->lines[r->n_lines++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->rule_index = rule;
    if (rule >= 0) {
        l->rule_kind = pol->rules[rule].kind;
        snprintf(l->rule_id, sizeof l->rule_id, "%s", pol->rules[rule].id);
    } else {
        l->rule_kind = PRICING_RULE_BASE;
    }
    l->detail = detail;
    l->qty_unit = qu;
    l->quantity = qty;
    l->unit_price = unit_price;
    l->amount = amount;
    snprintf(l->description, sizeof l->description, "%s", desc);
    return PRICING_OK;
}

/* ---- plan: which rules price this usage ---------------------------------- */

static int match_rank(const pricing_match *m, const pricing_usage *u)
{
    switch (m->kind) {
    case PRICING_MATCH_DEVICE:
        return u->device_id && strcmp(m->device, u->device_id) == 0 ? 3 : 0;
    case PRICING_MATCH_CLASS:
        return m->device_class == u->device_class ? 2 : 0;
    case PRICING_MATCH_ANY:
        return 1;
    }
    return 0;
}

/* Spot price at utilisation u: piecewise-linear through the curve (flat
 * beyond its ends), quoted in whole micro-units (half-even), clamped to
 * [floor, cap]. */
static pricing_status spot_price(ctx *c, const pricing_rule *r, int64_t u, int64_t *out)
{
    const pricing_spot_point *p = r->u.spot.p;
    size_t n = r->u.spot.n;
    int64_t price;
    pricing_status st;
    if (u <= p[0].utilisation_ppm) {
        price = p[0].price;
    } else if (u >= p[n - 1].utilisation_ppm) {
        price = p[n - 1].price;
    } else {
        size_t i = 0;
        while (p[i + 1].utilisation_ppm <= u)
            i++;
        i128 du = p[i + 1].utilisation_ppm - p[i].utilisation_ppm;
        i128 num = (i128)p[i].price * du +
                   (i128)(p[i + 1].price - p[i].price) * (u - p[i].utilisation_ppm);
        if ((st = rnd(c, num, du, &price)))
            return st;
    }
    if (price < r->u.spot.floor)
        price = r->u.spot.floor;
    if (price > r->u.spot.cap)
        price = r->u.spot.cap;
    *out = price;
    return PRICING_OK;
}

static pricing_status make_plan(ctx *c, int64_t utilisation)
{
    const pricing_policy *pol = c->pol;
    int priced = 0;
    c->contract = -1;
    for (size_t i = 0; i < pol->n_rules; i++)
        if (pol->rules[i].kind == PRICING_RULE_CONTRACT && c->use->tenant_id &&
            strcmp(pol->rules[i].u.base.tenant, c->use->tenant_id) == 0)
            c->contract = (int)i;
    for (int u = 0; u < PRICING_UNIT_COUNT; u++) {
        unit_plan *pl = &c->plan[u];
        int best = -1, best_rank = 0;
        memset(pl, 0, sizeof *pl);
        pl->rule = -1;
        if (pol->allowance_rule[u] >= 0)
            pl->free_q = pol->rules[pol->allowance_rule[u]].u.quota.quantity;
        if (pol->commitment_rule[u] >= 0) {
            pl->commit_q = pol->rules[pol->commitment_rule[u]].u.quota.quantity;
            pl->commit_price = pol->rules[pol->commitment_rule[u]].u.quota.price;
        }
        pl->k = pl->free_q + pl->commit_q; /* each <= 4e18 / 2 is not guaranteed: */
        if (pl->free_q > INT64_MAX - pl->commit_q)
            return overflow(c, "policy");
        if (c->contract >= 0 && pol->rules[c->contract].u.base.has_price[u]) {
            pl->kind = SRC_FLAT;
            pl->rule = c->contract;
            pl->price = pol->rules[c->contract].u.base.price[u];
            priced = 1;
            continue;
        }
        for (size_t i = 0; i < pol->n_rules; i++) {
            const pricing_rule *r = &pol->rules[i];
            int prices = r->kind == PRICING_RULE_BASE
                             ? r->u.base.has_price[u]
                             : (r->kind == PRICING_RULE_TIERS || r->kind == PRICING_RULE_SPOT) &&
                                   r->unit == (pricing_unit)u;
            int rank = prices ? match_rank(&r->match, c->use) : 0;
            if (rank > best_rank) {
                best_rank = rank;
                best = (int)i;
            }
        }
        if (best < 0)
            continue;
        priced = 1;
        pl->rule = best;
        const pricing_rule *r = &pol->rules[best];
        if (r->kind == PRICING_RULE_BASE) {
            pl->kind = SRC_FLAT;
            pl->price = r->u.base.price[u];
        } else if (r->kind == PRICING_RULE_TIERS) {
            pl->kind = r->u.tiers.volume ? SRC_VOLUME : SRC_GRADUATED;
            pl->tiers = r;
        } else {
            pricing_status st;
            if (utilisation < 0 || utilisation > PRICING_PPM)
                return failv(c->err, PRICING_ERR_RANGE, "utilisation_ppm",
                             "spot rule \"%s\" needs the live utilisation, 0 to 1000000 ppm "
                             "(got %lld)",
                             r->id, (long long)utilisation);
            if ((st = spot_price(c, r, utilisation, &pl->price)))
                return st;
            pl->kind = SRC_FLAT;
            c->out->spot_used[u] = 1;
            c->out->spot_price[u] = pl->price;
            c->out->utilisation_ppm = utilisation;
        }
    }
    if (!priced)
        return failv(c->err, PRICING_ERR_NO_RATE, "device_id",
                     "no rule of this policy prices device \"%s\" (class %s)",
                     c->use->device_id ? c->use->device_id : "",
                     cat_kind_name(c->use->device_class));
    return PRICING_OK;
}

/* ---- cumulative on-demand amounts ----------------------------------------- */

static size_t band_of(const pricing_rule *t, int64_t x)
{
    size_t b = 0;
    while (b + 1 < t->u.tiers.n && x >= t->u.tiers.t[b].to)
        b++;
    return b;
}

/* Exact on-demand numerator (over the unit scale) for period-to-date x:
 * the quantity beyond k priced by the plan. Volume tiers price all of it at
 * the price of the band x has reached; graduated tiers price each part at
 * its band's price. */
static i128 od_num(const unit_plan *pl, int64_t x)
{
    int64_t lo = pl->k;
    if (x <= lo)
        return 0;
    switch (pl->kind) {
    case SRC_FLAT:
        return (i128)(x - lo) * pl->price;
    case SRC_VOLUME:
        return (i128)(x - lo) * pl->tiers->u.tiers.t[band_of(pl->tiers, x)].price;
    case SRC_GRADUATED: {
        i128 s = 0;
        for (size_t b = 0; b < pl->tiers->u.tiers.n; b++) {
            const pricing_tier *t = &pl->tiers->u.tiers.t[b];
            int64_t a = t->from > lo ? t->from : lo;
            int64_t e = (t->to < 0 || t->to > x) ? x : t->to;
            if (e > a)
                s += (i128)(e - a) * t->price;
        }
        return s;
    }
    case SRC_NONE:
        break;
    }
    return 0;
}

static void describe_usage(char *buf, size_t cap, const unit_plan *pl, const pricing_policy *pol,
                           pricing_unit u, size_t band, int spot)
{
    const char *unit = u == PRICING_UNIT_CU ? "CU" : "device-hours";
    const char *id = pol->rules[pl->rule].id;
    if (spot)
        snprintf(buf, cap, "%s at spot price (rule %s)", unit, id);
    else if (pl->kind == SRC_GRADUATED)
        snprintf(buf, cap, "%s, graduated tier %zu (rule %s)", unit, band + 1, id);
    else if (pl->kind == SRC_VOLUME)
        snprintf(buf, cap, "%s, volume tier %zu (rule %s)", unit, band + 1, id);
    else
        snprintf(buf, cap, "%s on demand (rule %s)", unit, id);
}

/* Advance unit u by q within one segment; adds the segment's on-demand money
 * to *od. */
static pricing_status advance(ctx *c, pricing_unit u, int64_t q, int64_t *od)
{
    unit_plan *pl = &c->plan[u];
    const pricing_policy *pol = c->pol;
    int64_t x0 = c->st.quantity[u], x1, den = pricing_unit_scale(u), amt;
    pricing_qty_unit qu = u == PRICING_UNIT_CU ? PRICING_QTY_MCU : PRICING_QTY_DEVICE_MS;
    pricing_status st;
    char desc[PRICING_DESC_MAX + 1];

    if (q == 0)
        return PRICING_OK;
    if (__builtin_add_overflow(x0, q, &x1))
        return overflow(c, "quantity");
    c->st.quantity[u] = x1;

    /* 1. free allowance: [0, F) */
    if (pl->free_q > 0 && x0 < pl->free_q) {
        int64_t f = (x1 < pl->free_q ? x1 : pl->free_q) - x0;
        snprintf(desc, sizeof desc, "%s free allowance",
                 u == PRICING_UNIT_CU ? "CU" : "device-hours");
        if ((st = add_line(c, PRICING_LINE_FREE, pol, pol->allowance_rule[u], -1, qu, f, 0, 0,
                           desc)))
            return st;
    }
    /* 2. commitment: [F, F + C) at the committed price */
    if (pl->commit_q > 0) {
        int64_t c0 = x0 - pl->free_q, c1 = x1 - pl->free_q;
        c0 = c0 < 0 ? 0 : (c0 > pl->commit_q ? pl->commit_q : c0);
        c1 = c1 < 0 ? 0 : (c1 > pl->commit_q ? pl->commit_q : c1);
        if (c1 > c0) {
            if ((st =
                     delta(c, (i128)c0 * pl->commit_price, (i128)c1 * pl->commit_price, den, &amt)))
                return st;
            snprintf(desc, sizeof desc, "%s within reserved commitment",
                     u == PRICING_UNIT_CU ? "CU" : "device-hours");
            if ((st = add_line(c, PRICING_LINE_COMMITMENT, pol, pol->commitment_rule[u], -1, qu,
                               c1 - c0, pl->commit_price, amt, desc)))
                return st;
            /* commitment money is provider revenue, outside the multipliers */
            if ((st = add(c, &c->commit_money, amt)))
                return st;
        }
    }
    /* 3. on demand: [F + C, oo) */
    if (pl->kind == SRC_NONE || x1 <= pl->k)
        return PRICING_OK;
    int64_t a = x0 > pl->k ? x0 : pl->k;
    if (pl->kind == SRC_GRADUATED) {
        /* one line per band crossed; breakpoints telescope */
        const pricing_rule *t = pl->tiers;
        for (size_t b = band_of(t, a); b < t->u.tiers.n && a < x1; b++) {
            int64_t e =
                (t->u.tiers.t[b].to < 0 || t->u.tiers.t[b].to > x1) ? x1 : t->u.tiers.t[b].to;
            if (e <= a)
                continue;
            if ((st = delta(c, od_num(pl, a), od_num(pl, e), den, &amt)))
                return st;
            describe_usage(desc, sizeof desc, pl, pol, u, b, 0);
            if ((st = add_line(c, PRICING_LINE_USAGE, pol, pl->rule, (int)b, qu, e - a,
                               t->u.tiers.t[b].price, amt, desc)) ||
                (st = add(c, od, amt)))
                return st;
            a = e;
        }
        return PRICING_OK;
    }
    if (pl->kind == SRC_VOLUME) {
        const pricing_rule *t = pl->tiers;
        size_t b0 = band_of(t, x0), b1 = band_of(t, x1);
        int64_t p1 = t->u.tiers.t[b1].price;
        i128 mid = x0 > pl->k ? (i128)(x0 - pl->k) * p1 : 0; /* earlier usage at the new price */
        if (b1 != b0 && x0 > pl->k) {
            if ((st = delta(c, od_num(pl, x0), mid, den, &amt)))
                return st;
            snprintf(desc, sizeof desc, "%s reached volume tier %zu: earlier usage re-priced",
                     u == PRICING_UNIT_CU ? "CU" : "device-hours", b1 + 1);
            if ((st = add_line(c, PRICING_LINE_VOLUME_REPRICE, pol, pl->rule, (int)b1, qu,
                               x0 - pl->k, p1, amt, desc)) ||
                (st = add(c, od, amt)))
                return st;
        } else {
            mid = od_num(pl, x0);
        }
        if ((st = delta(c, mid, od_num(pl, x1), den, &amt)))
            return st;
        describe_usage(desc, sizeof desc, pl, pol, u, b1, 0);
        if ((st = add_line(c, PRICING_LINE_USAGE, pol, pl->rule, (int)b1, qu, x1 - a, p1, amt,
                           desc)))
            return st;
        return add(c, od, amt);
    }
    if ((st = delta(c, od_num(pl, a), od_num(pl, x1), den, &amt)))
        return st;
    describe_usage(desc, sizeof desc, pl, pol, u, 0, c->out->spot_used[u]);
    if ((st = add_line(c, PRICING_LINE_USAGE, pol, pl->rule, -1, qu, x1 - a, pl->price, amt, desc)))
        return st;
    return add(c, od, amt);
}

/* ---- time segments ---------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* From utc instant t (< end): the window in force (-1 none) and the first
 * instant after t at which it may change (capped at end). */
static pricing_status next_boundary(ctx *c, const pricing_tz *tz, int64_t t, int64_t end,
                                    int *window, int64_t *next)
{
    int32_t off;
    int64_t until;
    if (pricing_tz_offset_at(tz, t, &off, &until) != PRICING_OK)
        return failv(c->err, PRICING_ERR_TZ, "tz",
                     "zone \"%s\" has no offset for %lld (supply transitions covering the "
                     "interval)",
                     tz->name, (long long)t);
    int64_t local = t + (int64_t)off * 1000;
    int64_t day = floor_div(local, MS_PER_DAY);
    int64_t in_day = local - day * MS_PER_DAY;
    int dow = (int)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday (mon = 0) */
    int m = (int)(in_day / MS_PER_MIN);
    int w = c->pol->window_at[dow][m];
    int m2 = m + 1;
    while (m2 < 1440 && c->pol->window_at[dow][m2] == w)
        m2++;
    int64_t change = day * MS_PER_DAY + (int64_t)m2 * MS_PER_MIN - (int64_t)off * 1000;
    if (change > until)
        change = until;
    if (change > end)
        change = end;
    *window = w;
    *next = change;
    return PRICING_OK;
}

/* Quantity allocated to [start, t): floor(q x (t - start) / D). Cumulative,
 * so segment shares sum to q exactly. */
static int64_t alloc_upto(int64_t q, int64_t start, int64_t dur, int64_t t)
{
    return (int64_t)((i128)q * (t - start) / dur);
}

static pricing_status rate_segment(ctx *c, int window, int64_t qcu, int64_t qdev, int64_t *od)
{
    int64_t seg_od = 0;
    pricing_status st;
    if ((st = advance(c, PRICING_UNIT_CU, qcu, &seg_od)) ||
        (st = advance(c, PRICING_UNIT_DEVICE_HOUR, qdev, &seg_od)))
        return st;
    if (window >= 0 && (st = add(c, &c->st.window_base[window], seg_od)))
        return st;
    return add(c, od, seg_od);
}

/* ---- stages after usage ---------------------------------------------------- */

/* Multiplier line: period-to-date amount round(base x factor_ppm / 10^6). */
static pricing_status factor_line(ctx *c, pricing_line_kind kind, const pricing_policy *pol,
                                  int rule, int detail, int64_t base0, int64_t base1,
                                  int64_t factor_ppm, const char *desc, int64_t *amt)
{
    pricing_status st;
    *amt = 0;
    if (base1 == base0)
        return PRICING_OK;
    if ((st = delta(c, (i128)base0 * factor_ppm, (i128)base1 * factor_ppm, PRICING_PPM, amt)))
        return st;
    if (factor_ppm == 0)
        return PRICING_OK;
    return add_line(c, kind, pol, rule, detail, PRICING_QTY_MONEY, base1 - base0, factor_ppm, *amt,
                    desc);
}

/* Platform fee on provider money `charge`, then totals and derived figures. */
static pricing_status finish(ctx *c, int64_t charge)
{
    pricing_result *r = c->out;
    pricing_status st;
    int64_t fee = 0, tenant_fee = 0;
    if (c->plat && c->plat->fee_rule >= 0 && charge != 0) {
        const pricing_rule *f = &c->plat->rules[c->plat->fee_rule];
        int64_t b0 = c->st.fee_base;
        char desc[PRICING_DESC_MAX + 1];
        if ((st = add(c, &c->st.fee_base, charge)) ||
            (st = delta(c, (i128)b0 * f->u.fee.take_ppm, (i128)c->st.fee_base * f->u.fee.take_ppm,
                        PRICING_PPM, &fee)))
            return st;
        snprintf(desc, sizeof desc, "platform fee (rule %.40s, paid by %s)", f->id,
                 f->u.fee.payer == PRICING_PAYER_TENANT ? "tenant" : "provider");
        if (f->u.fee.payer == PRICING_PAYER_TENANT) {
            tenant_fee = fee;
            if ((st = add_line(c, PRICING_LINE_PLATFORM_FEE, c->plat, c->plat->fee_rule, -1,
                               PRICING_QTY_MONEY, charge, f->u.fee.take_ppm, fee, desc)))
                return st;
        } else {
            pricing_line *l = &r->provider_fee;
            memset(l, 0, sizeof *l);
            l->kind = PRICING_LINE_PLATFORM_FEE;
            l->rule_kind = PRICING_RULE_PLATFORM_FEE;
            l->rule_index = c->plat->fee_rule;
            snprintf(l->rule_id, sizeof l->rule_id, "%s", f->id);
            l->detail = -1;
            snprintf(l->description, sizeof l->description, "%s", desc);
            l->qty_unit = PRICING_QTY_MONEY;
            l->quantity = charge;
            l->unit_price = f->u.fee.take_ppm;
            l->amount = fee;
            r->has_provider_fee = 1;
        }
    } else if (!c->plat || c->plat->fee_rule < 0) {
        /* keep the accumulator meaningful even without a platform policy */
        if ((st = add(c, &c->st.fee_base, charge)))
            return st;
    }
    r->total = 0;
    for (size_t i = 0; i < r->n_lines; i++)
        if ((st = add(c, &r->total, r->lines[i].amount)))
            return st;
    if (__builtin_sub_overflow(r->total, tenant_fee, &r->provider_net) ||
        __builtin_sub_overflow(r->provider_net, r->has_provider_fee ? fee : 0, &r->provider_net))
        return overflow(c, "total");
    if ((st = add(c, &c->st.charged, r->total)))
        return st;
    for (int u = 0; u < PRICING_UNIT_COUNT; u++) {
        const unit_plan *pl = &c->plan[u];
        int64_t x = c->st.quantity[u], f = x < pl->free_q ? x : pl->free_q;
        int64_t cu = x - pl->free_q;
        r->free_used[u] = f;
        r->commitment_used[u] = cu < 0 ? 0 : (cu > pl->commit_q ? pl->commit_q : cu);
    }
    r->state = c->st;
    return PRICING_OK;
}

static void begin(ctx *c, const pricing_policy *pol, const pricing_policy *plat,
                  const pricing_state *state, pricing_result *out, pricing_error *err)
{
    memset(c, 0, sizeof *c);
    memset(out, 0, sizeof *out);
    c->pol = pol;
    c->plat = plat;
    c->out = out;
    c->err = err;
    c->contract = -1;
    if (state)
        c->st = *state;
    memcpy(out->currency, pol->currency, 4);
    out->utilisation_ppm = -1;
}

static pricing_status check_platform(ctx *c)
{
    if (c->plat && (c->plat->scope != PRICING_SCOPE_PLATFORM ||
                    memcmp(c->plat->currency, c->pol->currency, 4) != 0))
        return failv(c->err, PRICING_ERR_INVALID, "platform",
                     "platform policy must be platform-scope and in %s", c->pol->currency);
    if (c->pol->scope != PRICING_SCOPE_PROVIDER)
        return failv(c->err, PRICING_ERR_INVALID, "policy", "rating needs a provider policy");
    return PRICING_OK;
}

static pricing_status check_usage(ctx *c, const pricing_usage *u)
{
    if (!u)
        return failv(c->err, PRICING_ERR_INVALID, "usage", "required");
    if (u->quantity_mcu < 0)
        return failv(c->err, PRICING_ERR_INVALID, "quantity_mcu", "must not be negative (got %lld)",
                     (long long)u->quantity_mcu);
    if (u->device_ms < 0)
        return failv(c->err, PRICING_ERR_INVALID, "device_ms", "must not be negative (got %lld)",
                     (long long)u->device_ms);
    if (u->count < 1)
        return failv(c->err, PRICING_ERR_INVALID, "count", "must be at least 1");
    if ((unsigned)u->device_class >= CAT_KIND_COUNT)
        return failv(c->err, PRICING_ERR_INVALID, "device_class", "unknown device class");
    if (u->end_ms <= u->start_ms)
        return failv(c->err, PRICING_ERR_RANGE, "end_ms", "interval must end after it starts");
    if (u->end_ms - u->start_ms > MAX_INTERVAL_MS || u->start_ms < -MAX_INTERVAL_MS * 100 ||
        u->end_ms > MAX_INTERVAL_MS * 100)
        return failv(c->err, PRICING_ERR_RANGE, "end_ms", "interval out of range");
    return PRICING_OK;
}

pricing_status pricing_rate(const pricing_input *in, pricing_result *out, pricing_error *err)
{
    ctx c;
    pricing_status st;
    int64_t od = 0, amt;
    char desc[PRICING_DESC_MAX + 1];

    if (!in || !in->policy || !out)
        return failv(err, PRICING_ERR_INVALID, "input", "policy and result are required");
    begin(&c, in->policy, in->platform, in->state, out, err);
    c.use = in->usage;
    if ((st = check_platform(&c)) || (st = check_usage(&c, in->usage)) ||
        (st = make_plan(&c, in->utilisation_ppm)))
        return st;
    const pricing_usage *u = in->usage;
    const pricing_policy *pol = in->policy;
    int64_t dur = u->end_ms - u->start_ms;

    /* 1-2. segments and usage */
    if (pol->window_rule < 0) {
        out->segments = 1;
        if ((st = rate_segment(&c, -1, u->quantity_mcu, u->device_ms, &od)))
            return st;
    } else {
        const pricing_tz *tz = in->tz;
        if (!tz || strcmp(tz->name, pol->timezone) != 0)
            return failv(err, PRICING_ERR_TZ, "tz",
                         "the policy's windows are in \"%s\": pass that zone's offsets",
                         pol->timezone);
        int64_t t = u->start_ms;
        while (t < u->end_ms) {
            int w = -1;
            int64_t next = u->end_ms;
            if ((st = next_boundary(&c, tz, t, u->end_ms, &w, &next)))
                return st;
            if (++out->segments > PRICING_MAX_SEGMENTS)
                return failv(err, PRICING_ERR_RANGE, "end_ms", "interval crosses too many windows");
            int64_t qcu = alloc_upto(u->quantity_mcu, u->start_ms, dur, next) -
                          alloc_upto(u->quantity_mcu, u->start_ms, dur, t);
            int64_t qdev = alloc_upto(u->device_ms, u->start_ms, dur, next) -
                           alloc_upto(u->device_ms, u->start_ms, dur, t);
            if ((st = rate_segment(&c, w, qcu, qdev, &od)))
                return st;
            t = next;
        }
        /* 3a. time windows, on the on-demand money that fell in each */
        const pricing_rule *wr = &pol->rules[pol->window_rule];
        for (size_t w = 0; w < wr->u.windows.n; w++) {
            int64_t b0 = in->state ? in->state->window_base[w] : 0;
            const pricing_window *win = &wr->u.windows.w[w];
            snprintf(desc, sizeof desc, "time window \"%s\" x%lld ppm", win->name,
                     (long long)win->multiplier_ppm);
            if ((st = factor_line(&c, PRICING_LINE_WINDOW, pol, pol->window_rule, (int)w, b0,
                                  c.st.window_base[w], win->multiplier_ppm - PRICING_PPM, desc,
                                  &amt)) ||
                (st = add(&c, &od, amt)))
                return st;
        }
    }
    /* 3b. region multiplier on on-demand money incl. window adjustments */
    if (pol->region_rule >= 0 && u->region && u->region[0]) {
        const pricing_rule *rr = &pol->rules[pol->region_rule];
        for (size_t i = 0; i < rr->u.regions.n; i++) {
            if (strcmp(rr->u.regions.r[i].region, u->region) != 0)
                continue;
            int64_t b0 = c.st.region_base[i];
            if ((st = add(&c, &c.st.region_base[i], od)))
                return st;
            snprintf(desc, sizeof desc, "region %s x%lld ppm", u->region,
                     (long long)rr->u.regions.r[i].multiplier_ppm);
            if ((st = factor_line(&c, PRICING_LINE_REGION, pol, pol->region_rule, (int)i, b0,
                                  c.st.region_base[i],
                                  rr->u.regions.r[i].multiplier_ppm - PRICING_PPM, desc, &amt)) ||
                (st = add(&c, &od, amt)))
                return st;
        }
    }
    /* 3c. contract discount */
    if (c.contract >= 0 && pol->rules[c.contract].u.base.discount_ppm > 0) {
        int64_t b0 = c.st.discount_base;
        if ((st = add(&c, &c.st.discount_base, od)))
            return st;
        snprintf(desc, sizeof desc, "contract discount for %s", u->tenant_id);
        if ((st =
                 factor_line(&c, PRICING_LINE_DISCOUNT, pol, c.contract, -1, b0, c.st.discount_base,
                             -pol->rules[c.contract].u.base.discount_ppm, desc, &amt)) ||
            (st = add(&c, &od, amt)))
            return st;
    }
    /* 4. platform fee on everything the provider charges */
    int64_t charge;
    if (__builtin_add_overflow(c.commit_money, od, &charge))
        return overflow(&c, "total");
    return finish(&c, charge);
}

pricing_status pricing_commitment_trueup(const pricing_policy *policy,
                                         const pricing_policy *platform, const pricing_state *state,
                                         pricing_result *out, pricing_error *err)
{
    ctx c;
    pricing_status st;
    int64_t charge = 0;
    if (!policy || !out)
        return failv(err, PRICING_ERR_INVALID, "input", "policy and result are required");
    begin(&c, policy, platform, state, out, err);
    if ((st = check_platform(&c)))
        return st;
    for (int u = 0; u < PRICING_UNIT_COUNT; u++) {
        int ri = policy->commitment_rule[u];
        if (ri < 0)
            continue;
        const pricing_rule *r = &policy->rules[ri];
        int64_t fq = policy->allowance_rule[u] >= 0
                         ? policy->rules[policy->allowance_rule[u]].u.quota.quantity
                         : 0;
        int64_t used = c.st.quantity[u] - fq, amt;
        char desc[PRICING_DESC_MAX + 1];
        used = used < 0 ? 0 : (used > r->u.quota.quantity ? r->u.quota.quantity : used);
        c.plan[u].free_q = fq;
        c.plan[u].commit_q = r->u.quota.quantity;
        if (used == r->u.quota.quantity)
            continue;
        if ((st = delta(&c, (i128)used * r->u.quota.price,
                        (i128)r->u.quota.quantity * r->u.quota.price,
                        pricing_unit_scale((pricing_unit)u), &amt)))
            return st;
        snprintf(desc, sizeof desc, "unused %s commitment at period end",
                 u == PRICING_UNIT_CU ? "CU" : "device-hour");
        if ((st = add_line(&c, PRICING_LINE_COMMITMENT_TRUEUP, policy, ri, -1,
                           u == PRICING_UNIT_CU ? PRICING_QTY_MCU : PRICING_QTY_DEVICE_MS,
                           r->u.quota.quantity - used, r->u.quota.price, amt, desc)) ||
            (st = add(&c, &charge, amt)))
            return st;
    }
    return finish(&c, charge);
}

pricing_status pricing_minimum_trueup(const pricing_policy *policy, const pricing_policy *platform,
                                      int64_t order_total, const pricing_state *state,
                                      pricing_result *out, pricing_error *err)
{
    ctx c;
    pricing_status st;
    int64_t charge = 0;
    if (!policy || !out)
        return failv(err, PRICING_ERR_INVALID, "input", "policy and result are required");
    begin(&c, policy, platform, state, out, err);
    if ((st = check_platform(&c)))
        return st;
    if (policy->minimum_rule >= 0) {
        int64_t min = policy->rules[policy->minimum_rule].u.minimum;
        if (order_total < min) {
            char desc[PRICING_DESC_MAX + 1], a[MONEY_FMT_MAX];
            money_format(min, a, sizeof a);
            snprintf(desc, sizeof desc, "top-up to the order minimum of %s %s", a,
                     policy->currency);
            if (__builtin_sub_overflow(min, order_total, &charge))
                return overflow(&c, "order_total");
            if ((st = add_line(&c, PRICING_LINE_MINIMUM, policy, policy->minimum_rule, -1,
                               PRICING_QTY_MONEY, order_total, 0, charge, desc)))
                return st;
        }
    }
    return finish(&c, charge);
}

int pricing_result_consistent(const pricing_result *r)
{
    int64_t s = 0;
    if (!r || r->n_lines > PRICING_MAX_LINES)
        return 0;
    for (size_t i = 0; i < r->n_lines; i++)
        if (__builtin_add_overflow(s, r->lines[i].amount, &s))
            return 0;
    return s == r->total;
}
