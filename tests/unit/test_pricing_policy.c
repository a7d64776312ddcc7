/*
 * test_pricing_policy.c - policy documents: a document with every rule kind
 * parses into the expected model and renders canonically; every kind of bad
 * input is rejected with the JSON path of the offending field and a reason.
 * Also the time-zone transition API.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "policy.h"

/* Every rule kind (mirrors the example in docs/pricing.md). */
static const char *FULL =
    "{\"currency\":\"USD\",\"timezone\":\"Europe/Berlin\",\"rules\":["
    "{\"id\":\"gpu-base\",\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},"
    "\"per_cu\":\"0.002\",\"per_device_hour\":\"0.50\"},"
    "{\"id\":\"h100-cu\",\"kind\":\"tiers\",\"unit\":\"cu\",\"mode\":\"graduated\","
    "\"match\":{\"device\":\"nvidia-h100-sxm\"},\"volume_never_above_graduated\":true,"
    "\"tiers\":[{\"from\":0,\"to\":1000000,\"price\":\"0.003\"},{\"from\":1000000,\"price\":"
    "\"0.002\"}]},"
    "{\"id\":\"a100-spot\",\"kind\":\"spot\",\"unit\":\"cu\",\"match\":{\"device\":"
    "\"nvidia-a100-sxm-80gb\"},\"curve\":[{\"utilisation_ppm\":0,\"price\":\"0.001\"},"
    "{\"utilisation_ppm\":1000000,\"price\":\"0.005\"}],\"floor\":\"0.0015\",\"cap\":\"0.004\"},"
    "{\"id\":\"tod\",\"kind\":\"time_window\",\"windows\":["
    "{\"name\":\"peak\",\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"],\"start\":\"09:00\","
    "\"end\":\"18:00\",\"multiplier_ppm\":1500000},"
    "{\"name\":\"night\",\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"],"
    "\"start\":\"00:00\",\"end\":\"06:00\",\"multiplier_ppm\":800000}]},"
    "{\"id\":\"reserved\",\"kind\":\"commitment\",\"unit\":\"device_hour\",\"quantity\":"
    "360000000,\"price\":\"0.40\"},"
    "{\"id\":\"free\",\"kind\":\"allowance\",\"unit\":\"cu\",\"quantity\":100000},"
    "{\"id\":\"regions\",\"kind\":\"region\",\"multipliers\":{\"eu-west\":1100000,\"ap-south\":"
    "950000}},"
    "{\"id\":\"min\",\"kind\":\"minimum\",\"amount\":\"1.00\"},"
    "{\"id\":\"acme\",\"kind\":\"contract\",\"tenant\":\"ten_acme\",\"discount_ppm\":100000}]}";

static pricing_policy *parse(const char *s)
{
    pricing_error err = {0};
    pricing_policy *p = pricing_policy_parse(s, strlen(s), &err);
    cr_assert_not_null(p, "%s", err.message);
    return p;
}

Test(policy, every_rule_kind)
{
    pricing_policy *p = parse(FULL);
    cr_assert_str_eq(p->currency, "USD");
    cr_assert_str_eq(p->timezone, "Europe/Berlin");
    cr_assert_eq(p->n_rules, 9);
    const pricing_rule *r = p->rules;
    cr_assert_eq(r[0].kind, PRICING_RULE_BASE);
    cr_assert_eq(r[0].match.kind, PRICING_MATCH_CLASS);
    cr_assert_eq(r[0].match.device_class, CAT_KIND_GPU);
    cr_assert_eq(r[0].u.base.price[PRICING_UNIT_CU], 2000);
    cr_assert_eq(r[0].u.base.price[PRICING_UNIT_DEVICE_HOUR], 500000);
    cr_assert_eq(r[1].kind, PRICING_RULE_TIERS);
    cr_assert_eq(r[1].u.tiers.n, 2);
    cr_assert_eq(r[1].u.tiers.t[1].from, 1000000);
    cr_assert_eq(r[1].u.tiers.t[1].to, -1);
    cr_assert_eq(r[1].u.tiers.t[1].price, 2000);
    cr_assert_eq(r[2].u.spot.floor, 1500);
    cr_assert_eq(r[2].u.spot.cap, 4000);
    cr_assert_eq(p->window_rule, 3);
    cr_assert_eq(r[3].u.windows.w[0].start_min, 540);
    cr_assert_eq(r[3].u.windows.w[0].end_min, 1080);
    cr_assert_eq(r[3].u.windows.w[0].days, 0x1f);
    cr_assert_eq(r[3].u.windows.w[1].days, 0x7f);
    cr_assert_eq(p->window_at[0][540], 0);  /* mon 09:00 peak */
    cr_assert_eq(p->window_at[0][1079], 0); /* mon 17:59 */
    cr_assert_eq(p->window_at[0][1080], -1);
    cr_assert_eq(p->window_at[5][540], -1); /* sat */
    cr_assert_eq(p->window_at[5][0], 1);    /* sat 00:00 night */
    cr_assert_eq(p->commitment_rule[PRICING_UNIT_DEVICE_HOUR], 4);
    cr_assert_eq(r[4].u.quota.price, 400000);
    cr_assert_eq(p->allowance_rule[PRICING_UNIT_CU], 5);
    cr_assert_eq(p->region_rule, 6);
    /* regions are stored sorted by name */
    cr_assert_str_eq(r[6].u.regions.r[0].region, "ap-south");
    cr_assert_str_eq(r[6].u.regions.r[1].region, "eu-west");
    cr_assert_eq(r[7].u.minimum, 1000000);
    cr_assert_str_eq(r[8].u.base.tenant, "ten_acme");
    cr_assert_eq(r[8].u.base.discount_ppm, 100000);
    pricing_policy_free(p);
}

/* Canonical text is stable, sorted, compact, and a fixed point of parsing. */
Test(policy, canonical_round_trip)
{
    pricing_policy *p = parse(FULL);
    char *c1 = pricing_policy_canonical(p);
    cr_assert_not_null(c1);
    cr_assert(strncmp(c1, "{\"currency\":\"USD\",\"rules\":[", 27) == 0, "%s", c1);
    cr_assert_null(strchr(c1, ' '), "compact");
    cr_assert_not_null(strstr(c1, "\"per_cu\":\"0.002000\""), "money as 6-digit strings");
    pricing_policy *q = parse(c1);
    char *c2 = pricing_policy_canonical(q);
    cr_assert_str_eq(c1, c2);
    /* Same meaning, different spelling -> same canonical text. */
    const char *a = "{\"rules\":[{\"kind\":\"base\",\"id\":\"b\",\"per_cu\":\"2.5\"}],"
                    "\"currency\":\"EUR\"}";
    const char *b = "{\"currency\":\"EUR\",\"scope\":\"provider\",\"rules\":[{\"id\":\"b\","
                    "\"kind\":\"base\",\"match\":{},\"per_cu\":\"2.500000\"}]}";
    pricing_policy *pa = parse(a), *pb = parse(b);
    char *ca = pricing_policy_canonical(pa), *cb = pricing_policy_canonical(pb);
    cr_assert_str_eq(ca, cb);
    cr_assert_str_eq(ca, "{\"currency\":\"EUR\",\"rules\":[{\"id\":\"b\",\"kind\":\"base\","
                         "\"match\":{},\"per_cu\":\"2.500000\"}],\"scope\":\"provider\"}");
    free(c1);
    free(c2);
    free(ca);
    free(cb);
    pricing_policy_free(p);
    pricing_policy_free(q);
    pricing_policy_free(pa);
    pricing_policy_free(pb);
}

Test(policy, platform_scope)
{
    pricing_policy *p = parse("{\"currency\":\"USD\",\"scope\":\"platform\",\"rules\":[{\"id\":"
                              "\"take\",\"kind\":\"platform_fee\",\"take_ppm\":50000}]}");
    cr_assert_eq(p->scope, PRICING_SCOPE_PLATFORM);
    cr_assert_eq(p->fee_rule, 0);
    cr_assert_eq(p->rules[0].u.fee.take_ppm, 50000);
    cr_assert_eq(p->rules[0].u.fee.payer, PRICING_PAYER_PROVIDER);
    pricing_policy_free(p);
}

/* Build "{currency USD, timezone UTC, rules:[<rules>]}" and expect err. */
static void expect_error(const char *rules, const char *message)
{
    char doc[4096];
    pricing_error err = {0};
    snprintf(doc, sizeof doc, "{\"currency\":\"USD\",\"timezone\":\"UTC\",\"rules\":[%s]}", rules);
    pricing_policy *p = pricing_policy_parse(doc, strlen(doc), &err);
    cr_assert_null(p, "accepted: %s", doc);
    cr_assert_eq(err.code, PRICING_ERR_INVALID);
    cr_assert_str_eq(err.message, message, "for %s", rules);
}

#define TIER(f, t, p) "{\"from\":" #f ",\"to\":" #t ",\"price\":\"" p "\"}"
#define TIERS_RULE(body)                                                                           \
    "{\"id\":\"x\",\"kind\":\"base\",\"per_cu\":\"1\"},{\"id\":\"y\",\"kind\":\"base\","           \
    "\"per_device_hour\":\"1\",\"match\":{\"device\":\"d\"}},"                                     \
    "{\"id\":\"t\",\"kind\":\"tiers\",\"unit\":\"cu\",\"mode\":\"graduated\",\"match\":"           \
    "{\"device_class\":\"cpu\"},\"tiers\":[" body "]}"

Test(policy, tier_errors)
{
    expect_error(
        TIERS_RULE(TIER(0, 1000000, "1") "," TIER(1200000, 2000000, "1") ","
                                                                         "{\"from\":"
                                                                         "2000000,"
                                                                         "\"price\":"
                                                                         "\"1\"}"),
        "rules[2].tiers[1].from: tiers must be contiguous (expected 1000000, got 1200000)");
    expect_error(TIERS_RULE(TIER(0, 1000000, "1") "," TIER(900000, 2000000, "1")),
                 "rules[2].tiers[1].from: tiers must be contiguous (expected 1000000, got 900000)");
    expect_error(TIERS_RULE(TIER(5, 10, "1")),
                 "rules[2].tiers[0].from: the first tier must start at 0 (got 5)");
    expect_error(TIERS_RULE(TIER(0, 10, "1")),
                 "rules[2].tiers[0].to: the last tier must be open-ended (omit \"to\")");
    expect_error(TIERS_RULE("{\"from\":0,\"price\":\"1\"},{\"from\":0,\"price\":\"1\"}"),
                 "rules[2].tiers[0].to: required on every tier but the last");
    expect_error(TIERS_RULE(TIER(0, 0, "1")), "rules[2].tiers[0].to: must be between 1 and "
                                              "4000000000000000000 (got 0)");
    expect_error(TIERS_RULE("{\"from\":0,\"price\":\"-1\"}"),
                 "rules[2].tiers[0].price: must be between 0.000000 and 1000000.000000");
    expect_error(TIERS_RULE("{\"from\":0.0,\"price\":\"1\"}"),
                 "rules[2].tiers[0].from: must be an integer, not a real number");
    expect_error(TIERS_RULE("{\"from\":0,\"price\":1.5}"),
                 "rules[2].tiers[0].price: money must be a decimal string such as \"2.50\", not a "
                 "real number");
    expect_error(TIERS_RULE("{\"from\":0,\"price\":\"0.0000001\"}"),
                 "rules[2].tiers[0].price: at most 6 fraction digits (micro-units)");
    expect_error(TIERS_RULE("{\"from\":0,\"price\":\"1\",\"extra\":1}"),
                 "rules[2].tiers[0].extra: unknown field");
    expect_error(TIERS_RULE(""), "rules[2].tiers: must have 1 to 16 elements (got 0)");
    expect_error("{\"id\":\"t\",\"kind\":\"tiers\",\"unit\":\"cu\",\"mode\":\"volume\","
                 "\"volume_never_above_graduated\":true,\"tiers\":[" TIER(0, 10, "1") ","
                                                                                      "{\"from\":"
                                                                                      "10,"
                                                                                      "\"price\":"
                                                                                      "\"2\"}]}",
                 "rules[0].tiers[1].price: prices must not rise from tier to tier when "
                 "volume_never_above_graduated is true");
}

Test(policy, rule_errors)
{
    expect_error("{\"id\":\"a\",\"kind\":\"surge\"}", "rules[0].kind: unknown rule kind \"surge\"");
    expect_error("{\"id\":\"a\",\"kind\":7}", "rules[0].kind: unknown rule kind an integer");
    expect_error("{\"kind\":\"base\",\"per_cu\":\"1\"}", "rules[0].id: required");
    expect_error("{\"id\":\"a b\",\"kind\":\"base\",\"per_cu\":\"1\"}",
                 "rules[0].id: character ' ' not allowed");
    expect_error("{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":\"-0.5\"}",
                 "rules[0].per_cu: must be between 0.000000 and 1000000.000000");
    expect_error("{\"id\":\"a\",\"kind\":\"base\"}",
                 "rules[0]: a base rule needs per_cu and/or per_device_hour");
    expect_error("{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":\"1\",\"tiers\":[]}",
                 "rules[0].tiers: unknown field");
    expect_error("{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":\"1\"},{\"id\":\"a\",\"kind\":"
                 "\"minimum\",\"amount\":\"1\"}",
                 "rules[1].id: duplicate rule id \"a\" (also rules[0])");
    expect_error(
        "{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":\"1\"},{\"id\":\"b\",\"kind\":"
        "\"spot\",\"unit\":\"cu\",\"curve\":[{\"utilisation_ppm\":0,\"price\":\"1\"}],"
        "\"floor\":\"0\",\"cap\":\"1\"}",
        "rules[1]: a second cu rate for the same match (rules[0] \"a\" already prices it)");
    expect_error("{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":\"1\",\"match\":{\"device_class\":"
                 "\"tpu\"}}",
                 "rules[0].match.device_class: unknown device class \"tpu\" (gpu, cpu, npu, "
                 "accelerator)");
    expect_error("{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":\"1\",\"match\":{\"device\":\"x\","
                 "\"device_class\":\"gpu\"}}",
                 "rules[0].match: give either device or device_class, not both");
    expect_error("{\"id\":\"s\",\"kind\":\"spot\",\"unit\":\"cu\",\"curve\":[{\"utilisation_ppm\":"
                 "500000,\"price\":\"1\"},{\"utilisation_ppm\":500000,\"price\":\"2\"}],"
                 "\"floor\":\"0\",\"cap\":\"1\"}",
                 "rules[0].curve[1].utilisation_ppm: curve points must have strictly increasing "
                 "utilisation (500000 after 500000)");
    expect_error("{\"id\":\"s\",\"kind\":\"spot\",\"unit\":\"cu\",\"curve\":[{\"utilisation_ppm\":"
                 "0,\"price\":\"1\"}],\"floor\":\"2\",\"cap\":\"1\"}",
                 "rules[0].cap: must not be below floor");
    expect_error("{\"id\":\"s\",\"kind\":\"spot\",\"unit\":\"gpu\",\"curve\":[],\"floor\":\"0\","
                 "\"cap\":\"1\"}",
                 "rules[0].unit: must be \"cu\" or \"device_hour\"");
    expect_error("{\"id\":\"c\",\"kind\":\"commitment\",\"unit\":\"cu\",\"quantity\":-5,\"price\":"
                 "\"1\"}",
                 "rules[0].quantity: must be between 1 and 4000000000000000000 (got -5)");
    expect_error("{\"id\":\"c\",\"kind\":\"allowance\",\"unit\":\"cu\",\"quantity\":5},{\"id\":"
                 "\"d\",\"kind\":\"allowance\",\"unit\":\"cu\",\"quantity\":5}",
                 "rules[1]: only one allowance per unit rule per policy (rules[0] is one)");
    expect_error("{\"id\":\"r\",\"kind\":\"region\",\"multipliers\":{\"eu\":1.1}}",
                 "rules[0].multipliers.eu: must be an integer ppm, not a real number");
    expect_error("{\"id\":\"m\",\"kind\":\"minimum\",\"amount\":\"0\"}",
                 "rules[0].amount: must be between 0.000001 and 1000000.000000");
    expect_error("{\"id\":\"k\",\"kind\":\"contract\",\"tenant\":\"ten_a\"}",
                 "rules[0]: a contract needs discount_ppm, per_cu or per_device_hour");
    expect_error("{\"id\":\"k\",\"kind\":\"contract\",\"tenant\":\"ten_a\",\"discount_ppm\":"
                 "1000001}",
                 "rules[0].discount_ppm: must be between 0 and 1000000 (got 1000001)");
    expect_error("{\"id\":\"f\",\"kind\":\"platform_fee\",\"take_ppm\":1}",
                 "rules[0].kind: platform_fee belongs in a platform-scope policy");
}

#define WIN(days, s, e, m)                                                                         \
    "{\"name\":\"w\",\"days\":[" days "],\"start\":\"" s "\",\"end\":\"" e                         \
    "\",\"multiplier_ppm\":" #m "}"
#define WRULE(body) "{\"id\":\"tw\",\"kind\":\"time_window\",\"windows\":[" body "]}"

Test(policy, window_errors)
{
    expect_error(WRULE(WIN("\"mon\"", "09:00", "18:00", 1500000) "," WIN("\"tue\",\"mon\"", "17:00",
                                                                         "19:00", 1000000)),
                 "rules[0].windows[1]: overlaps windows[0] (\"w\") on mon at 17:00");
    expect_error(WRULE(WIN("\"mon\"", "22:00", "02:00", 1)),
                 "rules[0].windows[0].end: must be after start (split a window that crosses "
                 "midnight)");
    expect_error(WRULE(WIN("\"mon\"", "24:00", "24:00", 1)),
                 "rules[0].windows[0].start: hour out of range (00..23)");
    expect_error(WRULE(WIN("\"mon\"", "9:00", "10:00", 1)),
                 "rules[0].windows[0].start: must be a local time \"HH:MM\"");
    expect_error(WRULE(WIN("\"funday\"", "09:00", "10:00", 1)),
                 "rules[0].windows[0].days[0]: must be one of mon, tue, wed, thu, fri, sat, sun");
    expect_error(WRULE(WIN("\"mon\",\"mon\"", "09:00", "10:00", 1)),
                 "rules[0].windows[0].days[1]: day mon listed twice");
    expect_error(WRULE(WIN("\"mon\"", "09:00", "10:00", -1)),
                 "rules[0].windows[0].multiplier_ppm: must be between 0 and 100000000 (got -1)");
    expect_error(
        WRULE(WIN("\"mon\"", "09:00", "10:00", 1)) "," WRULE(WIN("\"tue\"", "09:00", "10:00", 1)),
        "rules[1]: only one time_window rule per policy (rules[0] is one)");
}

static void expect_doc_error(const char *doc, const char *message)
{
    pricing_error err = {0};
    pricing_policy *p = pricing_policy_parse(doc, strlen(doc), &err);
    cr_assert_null(p, "accepted: %s", doc);
    cr_assert_str_eq(err.message, message, "for %s", doc);
}

Test(policy, document_errors)
{
    expect_doc_error("{\"currency\":\"usd\",\"rules\":[]}",
                     "currency: must be an ISO 4217 code such as \"USD\"");
    expect_doc_error("{\"rules\":[]}", "currency: required");
    expect_doc_error("{\"currency\":\"USD\",\"rules\":[]}", "rules: must have 1 to 64 elements "
                                                            "(got 0)");
    expect_doc_error("{\"currency\":\"USD\",\"rules\":[],\"color\":1}", "color: unknown field");
    expect_doc_error(
        "{\"currency\":\"USD\",\"rules\":[" WRULE(WIN("\"mon\"", "09:00", "10:00", 1)) "]}",
        "timezone: required by the time_window rule rules[0]");
    expect_doc_error(
        "{\"currency\":\"USD\",\"timezone\":\"../etc/passwd\",\"rules\":[{\"id\":\"a\","
        "\"kind\":\"base\",\"per_cu\":\"1\"}]}",
        "timezone: not a time-zone name");
    expect_doc_error(
        "{\"currency\":\"USD\",\"currency\":\"EUR\",\"rules\":[]}",
        "malformed JSON at line 1 column 28: duplicate object key near '\"currency\"'");
    expect_doc_error("[1]", "must be an object, not an array");
    expect_doc_error("{\"currency\":\"USD\",\"rules\":[{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":"
                     "\"1\",\"match\":{\"device\":\"x\"}},{\"id\":\"b\",\"kind\":\"tiers\","
                     "\"unit\":\"cu\",\"mode\":\"graduated\",\"match\":{\"device\":\"x\"},"
                     "\"tiers\":[{\"from\":0,\"price\":\"1\"}]}]}",
                     "rules[1]: a second cu rate for the same match (rules[0] \"a\" already prices "
                     "it)");
    expect_doc_error("{\"currency\":\"USD\",\"scope\":\"platform\",\"rules\":[{\"id\":\"a\","
                     "\"kind\":\"base\",\"per_cu\":\"1\"}]}",
                     "rules[0].kind: a platform-scope policy holds only platform_fee rules");
    expect_doc_error("{\"currency\":\"USD\",\"rules\":[{\"id\":\"a\",\"kind\":\"base\",\"per_cu\":"
                     "\"1\",\"match\":{\"device\":\"x\"}}]",
                     "malformed JSON at line 1 column 88: '}' expected near end of file");
    /* An integer too large for int64 is a parse error, not a wrap. */
    pricing_error err = {0};
    const char *big = "{\"currency\":\"USD\",\"rules\":[{\"id\":\"a\",\"kind\":\"allowance\","
                      "\"unit\":\"cu\",\"quantity\":99999999999999999999}]}";
    cr_assert_null(pricing_policy_parse(big, strlen(big), &err));
    cr_assert_not_null(strstr(err.message, "too big"), "%s", err.message);
    cr_assert_null(pricing_policy_parse(NULL, 0, &err));
}

/* ---- time zones -------------------------------------------------------- */

/* Europe/Berlin around the 2024 spring transition (2024-03-31T01:00Z). */
static const pricing_tz_transition BERLIN[] = {
    {INT64_MIN, 3600}, {1711846800000, 7200}, {1729990800000, 3600}, /* 2024-10-27T01:00Z */
};

Test(tz, offsets)
{
    pricing_tz tz;
    int32_t off;
    int64_t until;
    cr_assert_eq(pricing_tz_init(&tz, "Europe/Berlin", BERLIN, 3, NULL), PRICING_OK);
    cr_assert_eq(pricing_tz_offset_at(&tz, 1711846799999, &off, &until), PRICING_OK);
    cr_assert_eq(off, 3600);
    cr_assert_eq(until, 1711846800000);
    cr_assert_eq(pricing_tz_offset_at(&tz, 1711846800000, &off, &until), PRICING_OK);
    cr_assert_eq(off, 7200);
    cr_assert_eq(until, 1729990800000);
    cr_assert_eq(pricing_tz_offset_at(&tz, INT64_MAX, &off, &until), PRICING_OK);
    cr_assert_eq(off, 3600);
    cr_assert_eq(until, INT64_MAX);
    cr_assert_eq(pricing_tz_fixed(&tz, "Asia/Kolkata", 19800, NULL), PRICING_OK);
    cr_assert_eq(pricing_tz_offset_at(&tz, 0, &off, &until), PRICING_OK);
    cr_assert_eq(off, 19800);
}

Test(tz, errors)
{
    pricing_tz tz;
    pricing_error err = {0};
    const pricing_tz_transition unsorted[] = {{0, 0}, {1000, 3600}, {1000, 0}};
    cr_assert_eq(pricing_tz_init(&tz, "X/Y", unsorted, 3, &err), PRICING_ERR_TZ);
    cr_assert_str_eq(err.message, "transitions[2]: transitions must be sorted by strictly "
                                  "increasing utc_start_ms (1000 after 1000)");
    const pricing_tz_transition wild[] = {{0, 100000}};
    cr_assert_eq(pricing_tz_init(&tz, "X/Y", wild, 1, &err), PRICING_ERR_TZ);
    cr_assert_str_eq(err.message, "transitions[0]: offset 100000 s is beyond +-26 h");
    cr_assert_eq(pricing_tz_init(&tz, "X/Y", NULL, 0, &err), PRICING_ERR_TZ);
    cr_assert_eq(pricing_tz_init(&tz, "", BERLIN, 3, &err), PRICING_ERR_TZ);
    const pricing_tz_transition late[] = {{1000, 0}};
    int32_t off;
    int64_t until;
    cr_assert_eq(pricing_tz_init(&tz, "X/Y", late, 1, NULL), PRICING_OK);
    cr_assert_eq(pricing_tz_offset_at(&tz, 999, &off, &until), PRICING_ERR_TZ);
}
