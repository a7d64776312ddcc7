/*
 * test_estimate_online.c - duration estimation: cold start, learning from
 * completed jobs, p90 from residuals, persistence, determinism, bad input.
 * Defaults: window 3, min_resid 16, p90 = p50 x e^(quantile), cold p90/p50
 * = e^0.693, p90 may exceed the cap by 10 %.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "estimate.h"

static est_state *st;
static void setup(void)
{
    st = est_new(NULL);
}
static void teardown(void)
{
    est_free(st);
}
TestSuite(estimate, .init = setup, .fini = teardown);

static const uint64_t K0 = 0x1111, K1 = 0x2222;

/* Cold start with a roofline prior of 100 s: p50 = 100, p90 = 100 x e^0.693
 * = 199.97 -> 200. */
Test(estimate, cold_start_prior)
{
    est_query q = {.keys = {K0}, .prior_s = 100};
    est_result r;
    cr_assert_eq(est_predict(st, &q, &r), EST_OK);
    cr_assert_eq(r.p50_s, 100);
    cr_assert_eq(r.p90_s, 200);
    cr_assert_eq(r.evidence, EST_EVIDENCE_PRIOR);
    cr_assert_eq(r.level, -1);
}

/* Cold start with only the user's 3600 s estimate, which is also the limit:
 * p50 = 3600; p90 = min(3600 x 1.9997, 3600 + 10 %) = 3960. Nothing known:
 * p50 = 0, evidence none. */
Test(estimate, cold_start_user_and_nothing)
{
    est_query q = {.keys = {K0}, .user_s = 3600, .cap_s = 3600};
    est_result r;
    cr_assert_eq(est_predict(st, &q, &r), EST_OK);
    cr_assert_eq(r.p50_s, 3600);
    cr_assert_eq(r.p90_s, 3960);
    cr_assert_eq(r.evidence, EST_EVIDENCE_USER);
    est_query none = {.keys = {K0}};
    cr_assert_eq(est_predict(st, &none, &r), EST_OK);
    cr_assert_eq(r.p50_s, 0);
    cr_assert_eq(r.evidence, EST_EVIDENCE_NONE);
}

/* Three jobs submitted with estimate 1000 s ran 100, 300, 200 s (ratios 0.1,
 * 0.3, 0.2). A new job with estimate 2000 s: rescaled 200, 600, 400 ->
 * median 400 s, from level 0 with 3 jobs of history. */
Test(estimate, learns_ratio_to_reference)
{
    est_query q = {.keys = {K0, K1}, .user_s = 1000};
    cr_assert_eq(est_learn(st, &q, 1000, 100), EST_OK);
    cr_assert_eq(est_learn(st, &q, 1000, 300), EST_OK);
    cr_assert_eq(est_learn(st, &q, 1000, 200), EST_OK);
    est_query next = {.keys = {K0, K1}, .user_s = 2000};
    est_result r;
    cr_assert_eq(est_predict(st, &next, &r), EST_OK);
    cr_assert_eq(r.p50_s, 400);
    cr_assert_eq(r.evidence, EST_EVIDENCE_HISTORY);
    cr_assert_eq(r.level, 0);
    cr_assert_eq(r.n_history, 3);
    /* An unseen level-0 key falls back to level 1 (same history there). */
    est_query other = {.keys = {0x3333, K1}, .user_s = 2000};
    cr_assert_eq(est_predict(st, &other, &r), EST_OK);
    cr_assert_eq(r.level, 1);
    cr_assert_eq(r.p50_s, 400);
}

/* The median looks at the last 3 jobs only: 10, 20, 900, 30, 40 -> {900, 30,
 * 40} -> 40. Two jobs: mean of the middle pair, rounded half up:
 * (100 + 201 + 1) / 2 = 151. Without a reference, actual seconds are used. */
Test(estimate, window_and_even_median)
{
    est_query q = {.keys = {K0}};
    int64_t runs[] = {10, 20, 900, 30, 40};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(est_learn(st, &q, 50, runs[i]), EST_OK);
    est_result r;
    cr_assert_eq(est_predict(st, &q, &r), EST_OK);
    cr_assert_eq(r.p50_s, 40);
    est_query q2 = {.keys = {K1}};
    est_learn(st, &q2, 100, 100);
    est_learn(st, &q2, 100, 201);
    cr_assert_eq(est_predict(st, &q2, &r), EST_OK);
    cr_assert_eq(r.p50_s, 151);
}

/* p50 is capped by the limit: history says 400 s but the job may only run
 * 300 s. */
Test(estimate, capped_by_limit)
{
    est_query q = {.keys = {K0}};
    est_learn(st, &q, 400, 400);
    est_query capped = {.keys = {K0}, .cap_s = 300};
    est_result r;
    cr_assert_eq(est_predict(st, &capped, &r), EST_OK);
    cr_assert_eq(r.p50_s, 300);
    cr_assert_leq(r.p90_s, 330);
}

/* Ten jobs predicted exactly (100 s each): residual ln(1) = 0 -> global bin
 * [0, 50) mnp, whose upper edge 50 is the global 0.9 quantile. The key's own
 * quantile is 0 with m = 10 residuals, shrunk towards the global one:
 * (0 x 10 + 50 x 16) / 26 = 30 mnp. p90 = 100 x e^0.030 = 103.05 -> 103. */
Test(estimate, p90_from_residuals)
{
    est_query q = {.keys = {K0}, .user_s = 100};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(est_learn(st, &q, 100, 100), EST_OK);
    est_result r;
    cr_assert_eq(est_predict(st, &q, &r), EST_OK);
    cr_assert_eq(r.p50_s, 100);
    cr_assert_eq(r.p90_s, 103);
}

/* Wider residuals widen p90: jobs ran 2x their p50 half the time. */
Test(estimate, p90_tracks_spread)
{
    est_query q = {.keys = {K0}, .user_s = 100};
    for (int i = 0; i < 16; i++)
        est_learn(st, &q, 100, i % 2 ? 200 : 100);
    est_result r;
    cr_assert_eq(est_predict(st, &q, &r), EST_OK);
    cr_assert_geq(r.p90_s, 2 * r.p50_s * 95 / 100);
    cr_assert_geq(r.p90_s, r.p50_s);
}

Test(estimate, bad_input)
{
    est_result r;
    est_query neg = {.keys = {K0}, .prior_s = -1};
    cr_assert_eq(est_predict(st, &neg, &r), EST_ERR_NEGATIVE);
    est_query huge = {.keys = {K0}, .user_s = EST_MAX_SECONDS + 1};
    cr_assert_eq(est_predict(st, &huge, &r), EST_ERR_RANGE);
    cr_assert_eq(est_predict(st, NULL, &r), EST_ERR_INVALID);
    cr_assert_eq(est_predict(NULL, &neg, &r), EST_ERR_INVALID);
    est_query ok = {.keys = {K0}};
    cr_assert_eq(est_learn(st, &ok, 10, -5), EST_ERR_NEGATIVE);
    cr_assert_eq(est_learn(st, &ok, 10, EST_MAX_SECONDS + 1), EST_ERR_RANGE);
    cr_assert_eq(est_entry_count(st), 0);
    cr_assert_str_eq(est_status_code(EST_ERR_NEGATIVE), "negative_value");
}

Test(estimate, keys_are_stable_and_distinct)
{
    cr_assert_eq(est_key("t", "c", "gpu"), est_key("t", "c", "gpu"));
    cr_assert_neq(est_key("ab", "c", NULL), est_key("a", "bc", NULL));
    cr_assert_neq(est_key_mix(est_key("t", NULL, NULL), 1),
                  est_key_mix(est_key("t", NULL, NULL), 2));
    cr_assert_neq(est_key(NULL, NULL, NULL), 0);
}

/* Feed a pseudo-random but fixed sequence into two states, and restore a
 * third from the first one's JSON: all three predict identically. */
Test(estimate, deterministic_and_persistable)
{
    est_state *b = est_new(NULL), *c = est_new(NULL);
    uint64_t x = 42;
    for (int i = 0; i < 2000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        est_query q = {
            .keys = {est_key_mix(1, (int64_t)(x >> 60)), est_key_mix(2, (int64_t)(x >> 62))},
            .user_s = 100 + (int64_t)(x >> 50) % 5000};
        int64_t actual = (int64_t)(x >> 40) % 4000;
        est_result ra, rb;
        est_predict(st, &q, &ra);
        est_predict(b, &q, &rb);
        cr_assert_eq(ra.p50_s, rb.p50_s);
        cr_assert_eq(ra.p90_s, rb.p90_s);
        est_learn(st, &q, ra.p50_s, actual);
        est_learn(b, &q, rb.p50_s, actual);
    }
    for (size_t i = 0; i < est_entry_count(st); i++) {
        json_t *j = est_entry_to_json(est_entry_at(st, i));
        char *s = json_dumps(j, 0);
        json_t *back = json_loads(s, 0, NULL);
        est_entry e;
        cr_assert_eq(est_entry_from_json(back, &e), EST_OK);
        cr_assert_eq(est_restore_entry(c, &e), EST_OK);
        free(s);
        json_decref(j);
        json_decref(back);
    }
    json_t *g = est_global_to_json(st);
    cr_assert_eq(est_global_from_json(c, g), EST_OK);
    json_decref(g);
    cr_assert_eq(est_entry_count(c), est_entry_count(st));
    for (int k = 0; k < 16; k++) {
        est_query q = {.keys = {est_key_mix(1, k), est_key_mix(2, k % 4)}, .user_s = 777};
        est_result ra, rc;
        est_predict(st, &q, &ra);
        est_predict(c, &q, &rc);
        cr_assert_eq(ra.p50_s, rc.p50_s);
        cr_assert_eq(ra.p90_s, rc.p90_s);
    }
    json_t *bad = json_pack("{s:i, s:s}", "format", 1, "key", "zz");
    est_entry e;
    cr_assert_eq(est_entry_from_json(bad, &e), EST_ERR_INVALID);
    json_decref(bad);
    est_free(b);
    est_free(c);
}
