/*
 * handlers_offers.c - provider offers: create (pending, with an identity
 * challenge), publish (the challenge signed with a registered key), list, read,
 * change, withdraw, and the health of an offer's endpoint.
 *
 * An offer's identifier is region/handle/name (market/ident.h). The handle is
 * the provider's: claimed by its first offer, refused (409) to anyone else.
 * The challenge the provider signs (Ed25519, detached) is the exact bytes
 *
 *   "tally-offer-challenge-v1\n" offer_id "\n" identifier "\n" challenge_hex
 *
 * Every change bumps market_generation in its transaction and is applied to
 * this process's resolution cache before the response (market_cache.h).
 * Orders keep their own copy of what they bought: changing or withdrawing an
 * offer never touches an order already placed on it.
 */
#include "endpoint.h"
#include "handlers.h"
#include "idem_write.h"
#include "ident.h"
#include "ids.h"
#include "market_cache.h"
#include "paging.h"
#include "scope.h"
#include "server.h"
#include "timefmt.h"
#include "validate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHALLENGE_PREFIX "tally-offer-challenge-v1\n"
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
/* An offer row: MARKET_OFFER_COLUMNS, then these (rendered by offer_json). */
#define OFFER_EXTRA                                                                                \
    ", o.challenge, o.verified_key_id, " TS("o.created_at") ", " TS("o.updated_at") ", " TS(       \
        "o.published_at") ", " TS("o.withdrawn_at")
#define OFFER_SELECT "SELECT " MARKET_OFFER_COLUMNS OFFER_EXTRA " FROM offers o "
#define OFFER_SELECT_FROM_INS "SELECT " MARKET_OFFER_COLUMNS OFFER_EXTRA " FROM ins o"
#define OFFER_SELECT_FROM_UPD "SELECT " MARKET_OFFER_COLUMNS OFFER_EXTRA " FROM upd o"

struct off_job {
    uint64_t token;
    market_cache *mc;
    char id[48], caller[48], owner[48];
    unsigned role;
    market_ident ident;
    char device[64], zone[IDENT_LABEL_MAX + 1], endpoint[ENDPOINT_MAX_LEN + 1], policy[48];
    long long per_node, nodes;
    char from[40], until[40];
    int64_t until_ms;
    char *residency; /* JSON array text, or NULL when not given */
    int set_nodes, set_endpoint, set_policy, set_until, set_residency;
    char key_id[48];
    unsigned char sig[crypto_sign_BYTES];
};

static void off_job_free(void *arg)
{
    struct off_job *j = arg;

    if (j->mc)
        market_cache_unstage(j->mc, j->token);
    free(j->residency);
    free(j);
}

static struct off_job *off_job_new(http_ctx *c)
{
    struct off_job *j = calloc(1, sizeof *j);
    const http_caller *who = http_get_caller(c);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    j->token = market_cache_token();
    j->mc = http_server(c)->market;
    snprintf(j->caller, sizeof j->caller, "%s", who->account_id);
    j->role = who->role;
    return j;
}

/* The account whose offers the caller may change: NULL for an admin (any). */
static const char *owner_filter(const struct off_job *j)
{
    return j->role & ROLE_ADMIN ? NULL : j->caller;
}

/* ---- rendering ----------------------------------------------------------------------- */

static json_t *ts_or_null(PGresult *r, int i, int col)
{
    return PQgetisnull(r, i, col) ? json_null() : json_string(PQgetvalue(r, i, col));
}

static json_t *ms_json(int64_t ms)
{
    char t[40];

    if (!ms)
        return json_null();
    timefmt_format(ms, t, sizeof t);
    return json_string(t);
}

static void challenge_message(char *out, size_t cap, const char *id, const char *identifier,
                              const char *challenge)
{
    snprintf(out, cap, CHALLENGE_PREFIX "%s\n%s\n%s", id, identifier, challenge);
}

/* Row i of an OFFER_SELECT as the API shows it; the challenge only to its owner. */
static json_t *offer_json(PGresult *r, int i, const char *viewer, unsigned role)
{
    market_offer o;
    json_t *res, *out;
    const char *state = PQgetvalue(r, i, 15);
    int base = MARKET_OFFER_NCOLS;

    if (market_offer_from_row(r, i, &o) != 0)
        return NULL;
    res = json_array();
    for (int k = 0; k < o.nresidency; k++)
        json_array_append_new(res, json_string(o.residency[k]));
    out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:s, s:s, s:o, s:o, "
                    "s:o, s:s, s:i, s:o, s:s, s:s, s:o, s:o}",
                    "id", o.id, "identifier", o.identifier, "provider_id", o.provider_id, "region",
                    o.region, "handle", o.handle, "name", o.name, "zone", o.zone, "device",
                    o.device_id, "devices_per_node", o.devices_per_node, "nodes", o.nodes,
                    "total_devices", (json_int_t)o.devices_per_node * o.nodes, "endpoint",
                    o.endpoint, "policy_id", o.policy_id, "available_from",
                    ms_json(o.available_from_ms), "available_until", ms_json(o.available_until_ms),
                    "residency", res, "state", state, "version", o.version, "verified_key_id",
                    ts_or_null(r, i, base + 1), "created_at", PQgetvalue(r, i, base + 2),
                    "updated_at", PQgetvalue(r, i, base + 3), "published_at",
                    ts_or_null(r, i, base + 4), "withdrawn_at", ts_or_null(r, i, base + 5));
    if (out && !strcmp(state, "pending") &&
        ((role & ROLE_ADMIN) || (viewer && !strcmp(viewer, o.provider_id)))) {
        char msg[512];
        challenge_message(msg, sizeof msg, o.id, o.identifier, PQgetvalue(r, i, base));
        json_object_set_new(out, "challenge", json_string(PQgetvalue(r, i, base)));
        json_object_set_new(out, "challenge_message", json_string(msg));
    }
    return out;
}

/* ---- validation (on the loop: pure and fast) ------------------------------------------ */

static int val_identifier(http_ctx *c, json_t *body, struct off_job *j)
{
    const char *s;
    size_t pos = 0;
    ident_status st;

    if (val_string(c, body, "identifier", 1, 400, &s))
        return -1;
    if ((st = ident_parse_full(s, strlen(s), &j->ident, &pos)) != IDENT_OK) {
        http_reply_problemf(c, PROB_VALIDATION, "identifier", "%s (at byte %zu); see %s",
                            ident_status_message(st), pos, "docs/identifiers.md");
        return -1;
    }
    return 0;
}

static int val_device(http_ctx *c, json_t *body, struct off_job *j)
{
    const cat_catalog *cat;
    const cu_eff_table *eff;
    metering_cache *mc = http_server(c)->metering;
    const char *s;
    int known;

    if (val_string(c, body, "device", 1, 63, &s))
        return -1;
    mcache_read_lock(mc, &cat, &eff);
    known = cat && cat_find(cat, s) != NULL;
    mcache_read_unlock(mc);
    if (!known) {
        http_reply_problemf(c, PROB_VALIDATION, "device", "'%s' is not in the device catalog", s);
        return -1;
    }
    snprintf(j->device, sizeof j->device, "%s", s);
    return 0;
}

static int val_endpoint(http_ctx *c, json_t *body, int required, struct off_job *j)
{
    const char *s;
    market_endpoint ep;
    char err[160];

    if (val_string(c, body, "endpoint", required, 300, &s))
        return -1;
    if (!s)
        return 0;
    if (endpoint_parse(s, &ep, err, sizeof err) != 0) {
        http_reply_problemf(c, PROB_VALIDATION, "endpoint", "%s", err);
        return -1;
    }
    snprintf(j->endpoint, sizeof j->endpoint, "%s", ep.text);
    j->set_endpoint = 1;
    return 0;
}

static int val_zone(http_ctx *c, json_t *body, struct off_job *j)
{
    const char *s;

    if (val_string(c, body, "zone", 0, 63, &s))
        return -1;
    if (!s)
        return 0;
    for (size_t i = 0; s[i]; i++)
        j->zone[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    if (!ident_label_valid(j->zone, strlen(j->zone))) {
        http_reply_problem(c, PROB_VALIDATION,
                           "a zone is a label: 1-63 of a-z, 0-9 and '-', not at either end",
                           "zone");
        return -1;
    }
    return 0;
}

/* residency: up to 16 distinct labels of at most 32 characters (case-folded). */
static int val_residency(http_ctx *c, json_t *body, struct off_job *j)
{
    json_t *a = json_object_get(body, "residency"), *out;
    size_t k;
    json_t *v;

    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > MARKET_MAX_RESIDENCY) {
        http_reply_problem(c, PROB_VALIDATION, "'residency' is an array of at most 16 tags",
                           "residency");
        return -1;
    }
    out = json_array();
    json_array_foreach(a, k, v)
    {
        const char *s = json_string_value(v);
        char tag[MARKET_TAG_MAX + 1] = "";
        size_t n = s ? strlen(s) : 0;
        for (size_t i = 0; i < n && n <= MARKET_TAG_MAX; i++)
            tag[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        int dup = 0;
        for (size_t m = 0; m < json_array_size(out); m++)
            dup |= !strcmp(json_string_value(json_array_get(out, m)), tag);
        if (n == 0 || n > MARKET_TAG_MAX || !ident_label_valid(tag, n) || dup) {
            json_decref(out);
            http_reply_problemf(c, PROB_VALIDATION, "residency",
                                "residency[%zu]: a tag is 1-32 of a-z, 0-9 and '-' (not at "
                                "either end), each tag once",
                                k);
            return -1;
        }
        json_array_append_new(out, json_string(tag));
    }
    j->residency = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    j->set_residency = j->residency != NULL;
    return 0;
}

/* A timestamp field into ISO text (and ms); absent -> 0; JSON null -> 2 when allowed. */
static int val_time(http_ctx *c, json_t *body, const char *field, int allow_null, char *out,
                    size_t cap, int64_t *ms, int *set)
{
    json_t *v = json_object_get(body, field);

    *set = 0;
    if (!v)
        return 0;
    if (json_is_null(v) && allow_null) {
        *set = 2;
        *ms = 0;
        return 0;
    }
    if (!json_is_string(v) || timefmt_parse(json_string_value(v), ms) != 0) {
        http_reply_problemf(c, PROB_VALIDATION, field,
                            "'%s' must be an ISO-8601 UTC time like 2026-01-31T12:00:00Z%s", field,
                            allow_null ? " (or null)" : "");
        return -1;
    }
    timefmt_format(*ms, out, cap);
    *set = 1;
    return 0;
}

static int val_policy(http_ctx *c, json_t *body, int required, struct off_job *j)
{
    const char *s;

    if (val_string(c, body, "policy_id", required, 47, &s))
        return -1;
    if (!s)
        return 0;
    if (!ids_valid(s, "pol")) {
        http_reply_problemf(c, PROB_VALIDATION, "policy_id", "'%s' is not a policy id", s);
        return -1;
    }
    snprintf(j->policy, sizeof j->policy, "%s", s);
    j->set_policy = 1;
    return 0;
}

/* ---- database steps --------------------------------------------------------------------- */

static const char sql_policy_owner[] = "SELECT owner_id, scope FROM pricing_policies WHERE id = $1";

/* 1 when policy is owner's provider-scope policy; else a 422 body is set and 0. */
static int check_policy(db_conn *db, const char *policy, const char *owner, int *status,
                        json_t **body, int *rc)
{
    const char *p[] = {policy};
    PGresult *r = db_exec(db, sql_policy_owner, 1, p);
    int ok;

    *rc = DB_OK;
    if (!r) {
        *rc = db_last_status(db);
        return 0;
    }
    ok = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), owner) &&
         !strcmp(PQgetvalue(r, 0, 1), "provider");
    PQclear(r);
    if (!ok) {
        *status = 422;
        *body =
            idem_problem(PROB_VALIDATION, "policy_id",
                         "'%s' is not a provider-scope pricing policy of this provider", policy);
    }
    return ok;
}

static const char sql_handles[] =
    "SELECT handle, provider_id FROM provider_handles WHERE handle = $1 OR provider_id = $2";
static const char sql_handle_claim[] =
    "INSERT INTO provider_handles (handle, provider_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/* Claim (or confirm) handle for provider. DB_OK with *status 0 when it is the
 * provider's; else a 409/422 body. */
static int claim_handle(db_conn *db, const char *handle, const char *provider, int *status,
                        json_t **body)
{
    const char *p[] = {handle, provider};
    PGresult *r = db_exec(db, sql_handles, 2, p);
    int mine = 0, n;

    if (!r)
        return db_last_status(db);
    for (int i = 0; i < PQntuples(r) && !*status; i++) {
        int same_handle = !strcmp(PQgetvalue(r, i, 0), handle);
        int same_owner = !strcmp(PQgetvalue(r, i, 1), provider);
        if (same_handle && same_owner) {
            mine = 1;
        } else if (same_handle) {
            *status = 409;
            *body = idem_problem(PROB_CONFLICT, "identifier",
                                 "the handle '%s' belongs to another provider", handle);
        } else {
            *status = 422;
            *body = idem_problem(PROB_VALIDATION, "identifier",
                                 "your provider handle is '%s': identifiers are region/%s/name",
                                 PQgetvalue(r, i, 0), PQgetvalue(r, i, 0));
        }
    }
    PQclear(r);
    if (mine || *status)
        return DB_OK;
    if (!(r = db_exec(db, sql_handle_claim, 2, p)))
        return db_last_status(db);
    n = atoi(PQcmdTuples(r));
    PQclear(r);
    if (n != 1) { /* claimed concurrently */
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, "identifier", "the handle '%s' was just claimed; retry",
                             handle);
    }
    return DB_OK;
}

/* Finish a write whose RETURNING row is r[0]: bump the generation, stage the
 * cache change, render the response. Takes r. */
static int finish_write(db_conn *db, struct off_job *j, PGresult *r, int status_ok, int *status,
                        json_t **body)
{
    market_offer o;
    int rc = market_cache_bump(db);

    if (rc != DB_OK) {
        PQclear(r);
        return rc;
    }
    if (market_offer_from_row(r, 0, &o) == 0 && j->mc)
        market_cache_stage(j->mc, &o, PQgetvalue(r, 0, 15), j->token);
    *body = offer_json(r, 0, j->caller, j->role);
    *status = status_ok;
    PQclear(r);
    return *body ? DB_OK : DB_FAILED;
}

/* ---- create ------------------------------------------------------------------------------ */

static const char sql_offer_insert[] =
    "WITH ins AS (INSERT INTO offers (id, provider_id, identifier, region, zone, name, device_id, "
    "devices_per_node, nodes, endpoint, policy_id, available_from, available_until, residency, "
    "state, challenge) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
    "coalesce($12::timestamptz, now()), $13::timestamptz, "
    "ARRAY(SELECT json_array_elements_text(coalesce($14, '[]')::json)), 'pending', $15) "
    "ON CONFLICT (identifier) DO NOTHING RETURNING *) " OFFER_SELECT_FROM_INS;

static int op_offer_create(db_conn *db, void *arg, int *status, json_t **body)
{
    struct off_job *j = arg;
    unsigned char rnd[32];
    char challenge[65], per[16], nodes[16];
    const char *p[] = {j->id,
                       j->caller,
                       j->ident.text,
                       j->ident.label[0],
                       j->zone,
                       j->ident.label[2],
                       j->device,
                       per,
                       nodes,
                       j->endpoint,
                       j->policy,
                       j->from[0] ? j->from : NULL,
                       j->until[0] ? j->until : NULL,
                       j->residency,
                       challenge};
    PGresult *r;
    int rc;

    if (!check_policy(db, j->policy, j->caller, status, body, &rc))
        return rc;
    if ((rc = claim_handle(db, j->ident.label[1], j->caller, status, body)) != DB_OK || *status)
        return rc;
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(challenge, sizeof challenge, rnd, sizeof rnd);
    snprintf(per, sizeof per, "%lld", j->per_node);
    snprintf(nodes, sizeof nodes, "%lld", j->nodes);
    if (!(r = db_exec(db, sql_offer_insert, 15, p)))
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, "identifier",
                             "the identifier '%s' is taken (identifiers are never reused)",
                             j->ident.text);
        return DB_OK;
    }
    return finish_write(db, j, r, 201, status, body);
}

void h_offers_create(http_ctx *c)
{
    static const char *const fields[] = {
        "identifier", "device",         "devices_per_node", "nodes",     "zone", "endpoint",
        "policy_id",  "available_from", "available_until",  "residency", NULL};
    json_t *body = http_body(c);
    struct off_job *j;
    int64_t from = 0, until = 0;
    int set_from, set_until;

    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "'identifier' is required", "identifier");
        return;
    }
    if (val_known_fields(c, body, fields) || !(j = off_job_new(c)))
        return;
    if (val_identifier(c, body, j) || val_device(c, body, j) ||
        val_int(c, body, "devices_per_node", 1, 1, 1024, 1, &j->per_node) ||
        val_int(c, body, "nodes", 1, 1, 100000, 1, &j->nodes) || val_zone(c, body, j) ||
        val_endpoint(c, body, 1, j) || val_policy(c, body, 1, j) ||
        val_time(c, body, "available_from", 0, j->from, sizeof j->from, &from, &set_from) ||
        val_time(c, body, "available_until", 1, j->until, sizeof j->until, &until, &set_until) ||
        val_residency(c, body, j)) {
        off_job_free(j);
        return;
    }
    if (set_until == 1 && until <= (set_from ? from : timefmt_now_ms())) {
        off_job_free(j);
        http_reply_problem(c, PROB_VALIDATION, "'available_until' must be after available_from",
                           "available_until");
        return;
    }
    ids_new(j->id, sizeof j->id, "off");
    idem_write_submit(c, op_offer_create, j, off_job_free);
}

/* ---- publish ------------------------------------------------------------------------------ */

static const char sql_offer_lock[] =
    OFFER_SELECT "WHERE o.id = $1 AND ($2::text IS NULL OR o.provider_id = $2) FOR UPDATE";
static const char sql_key_get[] =
    "SELECT encode(public_key, 'hex'), revoked_at IS NOT NULL FROM provider_keys "
    "WHERE id = $1 AND provider_id = $2";
static const char sql_offer_publish[] =
    "WITH upd AS (UPDATE offers SET state = 'published', verified_key_id = $2, "
    "published_at = now(), updated_at = now() WHERE id = $1 RETURNING *) " OFFER_SELECT_FROM_UPD;

/* Lock the caller's offer j->id; NULL with a 404 body (or *rc) when there is none. */
static PGresult *lock_offer(db_conn *db, struct off_job *j, int *status, json_t **body, int *rc)
{
    const char *p[] = {j->id, owner_filter(j)};
    PGresult *r = db_exec(db, sql_offer_lock, 2, p);

    *rc = DB_OK;
    if (!r) {
        *rc = db_last_status(db);
        return NULL;
    }
    if (PQntuples(r) == 1)
        return r;
    PQclear(r);
    *status = 404;
    *body = idem_problem(PROB_NOT_FOUND, NULL, "no offer '%s' of yours", j->id);
    return NULL;
}

/* 1 when the key verifies the challenge of the locked offer r; else a 422 body. */
static int verify_challenge(db_conn *db, struct off_job *j, PGresult *r, int *status, json_t **body,
                            int *rc)
{
    const char *p[] = {j->key_id, PQgetvalue(r, 0, 1)};
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char msg[512];
    PGresult *k = db_exec(db, sql_key_get, 2, p);
    int revoked;

    *rc = DB_OK;
    if (!k) {
        *rc = db_last_status(db);
        return 0;
    }
    if (PQntuples(k) != 1) {
        PQclear(k);
        *status = 422;
        *body = idem_problem(PROB_VALIDATION, "key_id", "no provider key '%s' of this provider",
                             j->key_id);
        return 0;
    }
    revoked = PQgetvalue(k, 0, 1)[0] == 't';
    sodium_hex2bin(pk, sizeof pk, PQgetvalue(k, 0, 0), 64, NULL, NULL, NULL);
    PQclear(k);
    if (revoked) {
        *status = 422;
        *body = idem_problem(PROB_VALIDATION, "key_id", "provider key '%s' is revoked", j->key_id);
        return 0;
    }
    challenge_message(msg, sizeof msg, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2),
                      PQgetvalue(r, 0, MARKET_OFFER_NCOLS));
    if (crypto_sign_verify_detached(j->sig, (const unsigned char *)msg, strlen(msg), pk) != 0) {
        *status = 422;
        *body = idem_problem(PROB_VALIDATION, "signature",
                             "the signature does not verify: sign the exact challenge_message "
                             "with the key's Ed25519 secret key");
        return 0;
    }
    return 1;
}

static int op_offer_publish(db_conn *db, void *arg, int *status, json_t **body)
{
    struct off_job *j = arg;
    PGresult *r = lock_offer(db, j, status, body, &(int){0});
    const char *state;
    int rc;

    if (!r)
        return *status ? DB_OK : db_last_status(db);
    state = PQgetvalue(r, 0, 15);
    if (strcmp(state, "pending") != 0) {
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, NULL, "offer '%s' is %s, not pending", j->id, state);
        PQclear(r);
        return DB_OK;
    }
    if (!verify_challenge(db, j, r, status, body, &rc)) {
        PQclear(r);
        return rc;
    }
    PQclear(r);
    {
        const char *p[] = {j->id, j->key_id};
        if (!(r = db_exec(db, sql_offer_publish, 2, p)))
            return db_last_status(db);
    }
    return finish_write(db, j, r, 200, status, body);
}

/* After a change commits: apply it to this process's cache before replying. */
static void offer_committed(http_ctx *c)
{
    market_cache *mc = http_server(c)->market;

    if (mc)
        market_cache_commit(mc, http_param(c, "id"));
}

static int decode_signature(const char *s, unsigned char out[crypto_sign_BYTES])
{
    size_t len = strlen(s), n = 0;
    const char *end = NULL;
    unsigned char buf[crypto_sign_BYTES + 3];

    if (len == 2 * crypto_sign_BYTES)
        return sodium_hex2bin(out, crypto_sign_BYTES, s, len, NULL, &n, &end) == 0 &&
                       n == crypto_sign_BYTES && end == s + len
                   ? 0
                   : -1;
    if (sodium_base642bin(buf, sizeof buf, s, len, "=", &n, &end, sodium_base64_VARIANT_ORIGINAL) ==
            0 &&
        end == s + len && n == crypto_sign_BYTES) {
        memcpy(out, buf, n);
        return 0;
    }
    return -1;
}

void h_offers_publish(http_ctx *c)
{
    static const char *const fields[] = {"key_id", "signature", NULL};
    json_t *body = http_body(c);
    const char *id, *key, *sig;
    struct off_job *j;

    if (val_path_id(c, "id", "off", &id))
        return;
    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "'key_id' and 'signature' are required", "key_id");
        return;
    }
    if (val_known_fields(c, body, fields) || val_string(c, body, "key_id", 1, 47, &key) ||
        val_string(c, body, "signature", 1, 200, &sig) || !(j = off_job_new(c)))
        return;
    if (!ids_valid(key, "pk") || decode_signature(sig, j->sig) != 0) {
        off_job_free(j);
        http_reply_problem(c, PROB_VALIDATION,
                           ids_valid(key, "pk")
                               ? "an Ed25519 signature is 64 bytes as 128 hex digits or base64"
                               : "'key_id' is a provider key id (pk_...)",
                           ids_valid(key, "pk") ? "signature" : "key_id");
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->key_id, sizeof j->key_id, "%s", key);
    idem_write_submit_then(c, op_offer_publish, j, off_job_free, offer_committed);
}

/* ---- change and withdraw --------------------------------------------------------------------- */

static const char sql_offer_patch[] =
    "WITH upd AS (UPDATE offers SET nodes = coalesce($2::integer, nodes), "
    "endpoint = coalesce($3, endpoint), policy_id = coalesce($4, policy_id), "
    "available_until = CASE WHEN $5::boolean THEN $6::timestamptz ELSE available_until END, "
    "residency = CASE WHEN $7::text IS NULL THEN residency "
    "ELSE ARRAY(SELECT json_array_elements_text($7::json)) END, "
    "version = version + 1, updated_at = now() WHERE id = $1 RETURNING *) " OFFER_SELECT_FROM_UPD;
static const char sql_offer_withdraw[] =
    "WITH upd AS (UPDATE offers SET state = 'withdrawn', withdrawn_at = now(), "
    "updated_at = now() WHERE id = $1 RETURNING *) " OFFER_SELECT_FROM_UPD;

static int op_offer_patch(db_conn *db, void *arg, int *status, json_t **body)
{
    struct off_job *j = arg;
    char nodes[16];
    const char *p[] = {j->id,
                       j->set_nodes ? nodes : NULL,
                       j->set_endpoint ? j->endpoint : NULL,
                       j->set_policy ? j->policy : NULL,
                       j->set_until ? "true" : "false",
                       j->set_until == 1 ? j->until : NULL,
                       j->set_residency ? j->residency : NULL};
    market_offer o;
    PGresult *r = lock_offer(db, j, status, body, &(int){0});
    int rc;

    if (!r)
        return *status ? DB_OK : db_last_status(db);
    market_offer_from_row(r, 0, &o);
    if (!strcmp(PQgetvalue(r, 0, 15), "withdrawn")) {
        PQclear(r);
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, NULL, "offer '%s' is withdrawn", j->id);
        return DB_OK;
    }
    PQclear(r);
    if (j->set_until == 1 && j->until_ms <= o.available_from_ms) {
        *status = 422;
        *body = idem_problem(PROB_VALIDATION, "available_until",
                             "'available_until' must be after available_from");
        return DB_OK;
    }
    if (j->set_policy && !check_policy(db, j->policy, o.provider_id, status, body, &rc))
        return rc;
    snprintf(nodes, sizeof nodes, "%lld", j->nodes);
    if (!(r = db_exec(db, sql_offer_patch, 7, p)))
        return db_last_status(db);
    return finish_write(db, j, r, 200, status, body);
}

void h_offers_patch(http_ctx *c)
{
    static const char *const fields[] = {"nodes",           "endpoint",  "policy_id",
                                         "available_until", "residency", NULL};
    json_t *body = http_body(c);
    const char *id;
    struct off_job *j;
    int64_t until = 0;

    if (val_path_id(c, "id", "off", &id))
        return;
    if (!body || json_object_size(body) == 0) {
        http_reply_problem(c, PROB_VALIDATION,
                           "give at least one of nodes, endpoint, policy_id, available_until, "
                           "residency",
                           NULL);
        return;
    }
    if (val_known_fields(c, body, fields) || !(j = off_job_new(c)))
        return;
    j->set_nodes = json_object_get(body, "nodes") != NULL;
    if (val_int(c, body, "nodes", 0, 1, 100000, 1, &j->nodes) || val_endpoint(c, body, 0, j) ||
        val_policy(c, body, 0, j) ||
        val_time(c, body, "available_until", 1, j->until, sizeof j->until, &until, &j->set_until) ||
        val_residency(c, body, j)) {
        off_job_free(j);
        return;
    }
    j->until_ms = until;
    snprintf(j->id, sizeof j->id, "%s", id);
    idem_write_submit_then(c, op_offer_patch, j, off_job_free, offer_committed);
}

static int op_offer_withdraw(db_conn *db, void *arg, int *status, json_t **body)
{
    struct off_job *j = arg;
    const char *p[] = {j->id};
    PGresult *r = lock_offer(db, j, status, body, &(int){0});

    if (!r)
        return *status ? DB_OK : db_last_status(db);
    if (!strcmp(PQgetvalue(r, 0, 15), "withdrawn")) {
        PQclear(r);
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, NULL, "offer '%s' is already withdrawn", j->id);
        return DB_OK;
    }
    PQclear(r);
    if (!(r = db_exec(db, sql_offer_withdraw, 1, p)))
        return db_last_status(db);
    return finish_write(db, j, r, 200, status, body);
}

void h_offers_withdraw(http_ctx *c)
{
    const char *id;
    struct off_job *j;

    if (val_path_id(c, "id", "off", &id) || !(j = off_job_new(c)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    idem_write_submit_then(c, op_offer_withdraw, j, off_job_free, offer_committed);
}

/* ---- reads --------------------------------------------------------------------------------- */

/* Published offers for everyone; a provider also sees its own; admin and finance all. */
#define VISIBLE "(o.state = 'published' OR $2::text IS NULL OR o.provider_id = $2)"
static const char sql_offer_get[] = OFFER_SELECT "WHERE o.id = $1 AND " VISIBLE;
static const char sql_offer_list[] =
    OFFER_SELECT "WHERE ($1::text IS NULL OR o.id > $1) AND " VISIBLE
                 " AND ($3::text IS NULL OR o.region = $3) AND ($4::text IS NULL OR o.device_id = "
                 "$4) AND ($5::text IS NULL OR o.state = $5) AND ($6::text IS NULL OR "
                 "o.provider_id = $6) ORDER BY o.id LIMIT $7::integer";

struct off_read {
    char caller[48];
    unsigned role;
    int limit;
    market_cache *mc;
};

static struct off_read *off_read_new(http_ctx *c)
{
    struct off_read *j = calloc(1, sizeof *j);
    const http_caller *who = http_get_caller(c);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    snprintf(j->caller, sizeof j->caller, "%s", who->account_id);
    j->role = who->role;
    j->mc = http_server(c)->market;
    return j;
}

static void offer_got(http_ctx *c, PGresult *r, void *arg)
{
    struct off_read *j = arg;
    json_t *out = PQntuples(r) == 1 ? offer_json(r, 0, j->caller, j->role) : NULL;

    if (out)
        http_reply_json(c, 200, out);
    else
        http_reply_problem(c, PROB_NOT_FOUND, "no such offer", NULL);
    PQclear(r);
    free(j);
}

void h_offers_get(http_ctx *c)
{
    const char *id;
    struct off_read *j;

    if (val_path_id(c, "id", "off", &id) || !(j = off_read_new(c)))
        return;
    {
        const http_caller *who = http_get_caller(c);
        const char *p[] = {id, scope_owner_filter(who)};
        http_db_query(c, sql_offer_get, 2, p, offer_got, j, free);
    }
}

static json_t *list_row(PGresult *r, int i, const void *ctx)
{
    const struct off_read *j = ctx;
    return offer_json(r, i, j->caller, j->role);
}

static void offers_listed(http_ctx *c, PGresult *r, void *arg)
{
    struct off_read *j = arg;
    json_t *page = paging_build(r, j->limit, list_row, j);

    PQclear(r);
    free(j);
    if (page)
        http_reply_json(c, 200, page);
    else
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
}

static int val_query_filter(http_ctx *c, const char *name, const char **out)
{
    const char *s = http_query(c, name);

    *out = s;
    if (s && (!*s || strlen(s) > 63)) {
        http_reply_problemf(c, PROB_VALIDATION, name, "'%s' must be 1-63 characters", name);
        return -1;
    }
    return 0;
}

void h_offers_list(http_ctx *c)
{
    const char *after, *region, *device, *state, *provider;
    struct off_read *j;
    char lim[16];
    int limit;

    if (val_query_limit(c, 50, 200, &limit) || val_query_id(c, "after", "off", &after) ||
        val_query_filter(c, "region", &region) || val_query_filter(c, "device", &device) ||
        val_query_filter(c, "state", &state) || val_query_id(c, "provider", "acc", &provider))
        return;
    if (state && strcmp(state, "pending") && strcmp(state, "published") &&
        strcmp(state, "withdrawn")) {
        http_reply_problem(c, PROB_VALIDATION, "'state' is pending, published or withdrawn",
                           "state");
        return;
    }
    if (!(j = off_read_new(c)))
        return;
    j->limit = limit;
    snprintf(lim, sizeof lim, "%d", limit + 1);
    {
        const char *p[] = {
            after, scope_owner_filter(http_get_caller(c)), region, device, state, provider, lim};
        http_db_query(c, sql_offer_list, 7, p, offers_listed, j, free);
    }
}

/* ---- health --------------------------------------------------------------------------------- */

static json_t *health_json(const char *id, const char *endpoint, const probe_state *st)
{
    json_t *hist = json_array(), *out;
    char at[40];

    if (!st)
        return json_pack("{s:s, s:s, s:b, s:s, s:s}", "offer_id", id, "endpoint", endpoint,
                         "probed", 0, "status", "unknown", "reason",
                         "not probed: the offer is not published, its endpoint is a DNS name, "
                         "or probing is off");
    for (size_t k = 0; k < st->n_history; k++) {
        timefmt_format(st->history[k].at_ms, at, sizeof at);
        json_array_append_new(
            hist, json_pack("{s:s, s:b, s:f, s:i}", "at", at, "ok", st->history[k].ok, "rtt_ms",
                            (double)st->history[k].rtt_us / 1000.0, "error", st->history[k].error));
    }
    out = json_pack("{s:s, s:s, s:b, s:s, s:f, s:f, s:i, s:I, s:I, s:i, s:o, s:o, s:o}", "offer_id",
                    id, "endpoint", endpoint, "probed", 1, "status", probe_status_name(st->status),
                    "srtt_ms", st->srtt_ms, "last_rtt_ms", st->last_rtt_ms, "consecutive_failures",
                    st->consecutive_failures, "probes", (json_int_t)st->probes, "failures",
                    (json_int_t)st->failures, "failure_ratio_ppm", (int)st->failure_ratio_ppm,
                    "last_probe_at", ms_json(st->last_probe_ms), "last_change_at",
                    ms_json(st->last_change_ms), "history", hist);
    return out;
}

static void health_got(http_ctx *c, PGresult *r, void *arg)
{
    struct off_read *j = arg;
    probe_state st;

    if (PQntuples(r) != 1) {
        http_reply_problem(c, PROB_NOT_FOUND, "no such offer", NULL);
    } else {
        const char *id = PQgetvalue(r, 0, 0), *endpoint = PQgetvalue(r, 0, 9);
        int probed = j->mc && !strcmp(PQgetvalue(r, 0, 15), "published") &&
                     market_cache_health(j->mc, id, &st) == 0;
        http_reply_json(c, 200, health_json(id, endpoint, probed ? &st : NULL));
    }
    PQclear(r);
    free(j);
}

void h_offers_health(http_ctx *c)
{
    const char *id;
    struct off_read *j;

    if (val_path_id(c, "id", "off", &id) || !(j = off_read_new(c)))
        return;
    {
        const char *p[] = {id, scope_owner_filter(http_get_caller(c))};
        http_db_query(c, sql_offer_get, 2, p, health_got, j, free);
    }
}
