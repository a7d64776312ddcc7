/*
 * market_cache.c - the in-memory snapshot of published offers (market_cache.h).
 *
 * Representation: one immutable mc_snap (entries sorted by identifier, plus an
 * index sorted by offer id) behind a read-write lock. Each entry holds the
 * offer and its static resolution document rendered once, without the closing
 * brace, so a resolution is one binary search and two appends. Live figures
 * (reserved devices) are the only fields written in place, under the write lock.
 *
 * Invariant: a snapshot only moves forward. A refresh that started before a
 * local commit was applied is not swapped in (the next tick rebuilds), so a
 * change this process made never disappears after its response was sent.
 */
#include "market_cache.h"
#include "cu.h"
#include "endpoint.h"
#include "log.h"
#include "timefmt.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mc_entry {
    market_offer o; /* health fields copied from the probe engine (health_sync) */
    char *doc;      /* static document, "{...," without the closing brace */
    size_t doclen;
    int probed;
    double last_rtt_ms;
    int64_t last_probe_ms;
};

struct mc_snap {
    int64_t generation, policy_epoch;
    char catalog[72];
    size_t n;
    struct mc_entry *e; /* sorted by identifier */
    size_t *by_id;      /* indexes into e, sorted by offer id */
    int64_t capacity_at_ms;
};

struct mc_staged {
    struct mc_staged *next;
    uint64_t token;
    int published;
    struct mc_entry entry;
};

/* A published endpoint given as a DNS name, and the address it resolved to. */
struct mc_name {
    struct mc_name *next;
    char id[48];
    char endpoint[264];                    /* as published: "name:port" */
    char resolved[PROBE_ENDPOINT_MAX + 1]; /* "ip:port" / "[ip6]:port", "" until resolved */
    int pending;
    int64_t failed_at_ms; /* 0, or when the last resolution failed (retried after 30 s) */
};

/* An outstanding asynchronous resolution (evdns_getaddrinfo's argument). */
struct mc_dns_req {
    struct mc_dns_req *next;
    market_cache *mc;
    char id[48], endpoint[264], host[254];
    int port;
};

struct market_cache {
    pthread_rwlock_t lock;
    struct mc_snap *snap;
    unsigned long commits; /* local commits applied (under lock) */
    int64_t refreshes;
    metering_cache *metering;
    probe_engine *probes;
    pthread_mutex_t stage_lock;
    struct mc_staged *staged;
    market_health_fn on_health;
    void *on_health_arg;
    struct evdns_base *dns;     /* resolves DNS-name endpoints on the probe loop */
    pthread_mutex_t names_lock; /* guards names and reqs */
    struct mc_name *names;
    struct mc_dns_req *reqs;
};

/* ---- snapshots ------------------------------------------------------------------- */

static void snap_free(struct mc_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->e[i].doc);
    free(s->e);
    free(s->by_id);
    free(s);
}

static const struct mc_snap *sort_ctx; /* qsort has no context argument: under build_lock */
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static int cmp_ident(const void *a, const void *b)
{
    return strcmp(((const struct mc_entry *)a)->o.identifier,
                  ((const struct mc_entry *)b)->o.identifier);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(sort_ctx->e[*(const size_t *)a].o.id, sort_ctx->e[*(const size_t *)b].o.id);
}

/* Sort s->e by identifier and build the id index. 0 or -1 (out of memory). */
static int snap_index(struct mc_snap *s)
{
    free(s->by_id);
    s->by_id = malloc((s->n ? s->n : 1) * sizeof *s->by_id);
    if (!s->by_id)
        return -1;
    qsort(s->e, s->n, sizeof *s->e, cmp_ident);
    for (size_t i = 0; i < s->n; i++)
        s->by_id[i] = i;
    pthread_mutex_lock(&build_lock);
    sort_ctx = s;
    qsort(s->by_id, s->n, sizeof *s->by_id, cmp_id);
    sort_ctx = NULL;
    pthread_mutex_unlock(&build_lock);
    return 0;
}

static struct mc_entry *snap_find_id(const struct mc_snap *s, const char *id)
{
    size_t lo = 0, hi = s ? s->n : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->e[s->by_id[mid]].o.id, id);
        if (c == 0)
            return &s->e[s->by_id[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The first entry whose identifier is >= key. */
static size_t snap_lower_bound(const struct mc_snap *s, const char *key)
{
    size_t lo = 0, hi = s ? s->n : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->e[mid].o.identifier, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- rendering the static document ----------------------------------------------- */

static json_t *ms_or_null(int64_t ms)
{
    char t[40];

    if (ms == 0)
        return json_null();
    timefmt_format(ms, t, sizeof t);
    return json_string(t);
}

/* CU rating per workload class, per device and per node, from the metering cache. */
static json_t *render_rating(const cat_catalog *cat, const cu_eff_table *eff, const market_offer *o)
{
    json_t *r = json_object();

    for (int k = 0; k < CU_CLASS_COUNT && cat; k++) {
        cu_profile prof;
        cu_rate one, node;
        if (k == CU_CLASS_CUSTOM || cu_profile_named(cu_class_name((cu_class)k), &prof) != CU_OK)
            continue;
        if (cu_rate_for(cat, eff, o->device_id, 1, &prof, &one, NULL) != CU_OK ||
            cu_rate_for(cat, eff, o->device_id, o->devices_per_node, &prof, &node, NULL) != CU_OK)
            continue;
        json_object_set_new(r, cu_class_name((cu_class)k),
                            json_pack("{s:I, s:I, s:s}", "mcu_per_device_hour",
                                      (json_int_t)one.rate_mcu_per_hour, "mcu_per_node_hour",
                                      (json_int_t)node.total_mcu_per_hour, "precision",
                                      cat_precision_name(one.precision)));
    }
    return r;
}

static json_t *render_device(const cat_catalog *cat, const market_offer *o)
{
    const cat_device *d = cat ? cat_find(cat, o->device_id) : NULL;

    if (!d)
        return json_pack("{s:s}", "id", o->device_id);
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", o->device_id, "kind",
                     cat_kind_name(cat_device_kind(d)), "vendor", cat_device_vendor(d), "name",
                     cat_device_name(d), "memory_gb", (json_int_t)cat_device_memory_gb(d));
}

static json_t *render_residency(const market_offer *o)
{
    json_t *a = json_array();

    for (int i = 0; i < o->nresidency; i++)
        json_array_append_new(a, json_string(o->residency[i]));
    return a;
}

/* The static part of the resolution document of o: "{...," (malloc'd). */
static char *render_static(market_cache *mc, const market_offer *o, size_t *len)
{
    const cat_catalog *cat;
    const cu_eff_table *eff;
    json_t *doc;
    char *text;

    mcache_read_lock(mc->metering, &cat, &eff);
    doc = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:o, s:i, s:i, s:I, s:o, "
                    "s:{s:s, s:i}, s:o, s:o, s:o, s:i}",
                    "kind", "offer", "identifier", o->identifier, "offer_id", o->id, "provider_id",
                    o->provider_id, "location", "region", o->region, "zone", o->zone, "handle",
                    o->handle, "endpoint", o->endpoint, "device", render_device(cat, o),
                    "devices_per_node", o->devices_per_node, "nodes", o->nodes, "total_devices",
                    (json_int_t)o->devices_per_node * o->nodes, "cu_rating",
                    render_rating(cat, eff, o), "price_policy", "id", o->policy_id, "version",
                    o->policy_version, "residency", render_residency(o), "available_from",
                    ms_or_null(o->available_from_ms), "available_until",
                    ms_or_null(o->available_until_ms), "offer_version", o->version);
    mcache_read_unlock(mc->metering);
    text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text)
        return NULL;
    *len = strlen(text);
    text[*len - 1] = ','; /* the live figures follow */
    return text;
}

/* ---- rows ------------------------------------------------------------------------- */

static void copy_col(char *dst, size_t cap, PGresult *r, int i, int col)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, i, col));
}

static int residency_from_json(const char *text, market_offer *o)
{
    json_t *a = json_loads(text, 0, NULL);
    size_t k;
    json_t *v;

    if (!json_is_array(a)) {
        json_decref(a);
        return -1;
    }
    json_array_foreach(a, k, v)
    {
        if (o->nresidency == MARKET_MAX_RESIDENCY || !json_is_string(v))
            break;
        snprintf(o->residency[o->nresidency++], MARKET_TAG_MAX + 1, "%s", json_string_value(v));
    }
    json_decref(a);
    return 0;
}

int market_offer_from_row(PGresult *r, int i, market_offer *o)
{
    market_ident id;
    const char *ident = PQgetvalue(r, i, 2);

    memset(o, 0, sizeof *o);
    if (PQnfields(r) < MARKET_OFFER_NCOLS ||
        ident_parse_full(ident, strlen(ident), &id, NULL) != IDENT_OK)
        return -1;
    copy_col(o->id, sizeof o->id, r, i, 0);
    copy_col(o->provider_id, sizeof o->provider_id, r, i, 1);
    snprintf(o->identifier, sizeof o->identifier, "%s", id.text);
    snprintf(o->region, sizeof o->region, "%s", id.label[0]);
    snprintf(o->handle, sizeof o->handle, "%s", id.label[1]);
    snprintf(o->name, sizeof o->name, "%s", id.label[2]);
    copy_col(o->zone, sizeof o->zone, r, i, 4);
    copy_col(o->device_id, sizeof o->device_id, r, i, 6);
    o->devices_per_node = atoi(PQgetvalue(r, i, 7));
    o->nodes = atoi(PQgetvalue(r, i, 8));
    copy_col(o->endpoint, sizeof o->endpoint, r, i, 9);
    copy_col(o->policy_id, sizeof o->policy_id, r, i, 10);
    o->available_from_ms = strtoll(PQgetvalue(r, i, 11), NULL, 10);
    o->available_until_ms = PQgetisnull(r, i, 12) ? 0 : strtoll(PQgetvalue(r, i, 12), NULL, 10);
    o->version = atoi(PQgetvalue(r, i, 14));
    o->policy_version = PQgetisnull(r, i, 16) ? 0 : atoi(PQgetvalue(r, i, 16));
    return residency_from_json(PQgetvalue(r, i, 13), o);
}

/* ---- life cycle ------------------------------------------------------------------- */

market_cache *market_cache_new(metering_cache *metering)
{
    market_cache *mc = calloc(1, sizeof *mc);

    if (!mc)
        return NULL;
    pthread_rwlock_init(&mc->lock, NULL);
    pthread_mutex_init(&mc->stage_lock, NULL);
    pthread_mutex_init(&mc->names_lock, NULL);
    mc->metering = metering;
    return mc;
}

void market_cache_free(market_cache *mc)
{
    if (!mc)
        return;
    while (mc->staged) {
        struct mc_staged *s = mc->staged;
        mc->staged = s->next;
        free(s->entry.doc);
        free(s);
    }
    while (mc->names) {
        struct mc_name *n = mc->names;
        mc->names = n->next;
        free(n);
    }
    while (mc->reqs) { /* resolutions cancelled at shutdown never called back */
        struct mc_dns_req *q = mc->reqs;
        mc->reqs = q->next;
        free(q);
    }
    snap_free(mc->snap);
    pthread_mutex_destroy(&mc->names_lock);
    pthread_mutex_destroy(&mc->stage_lock);
    pthread_rwlock_destroy(&mc->lock);
    free(mc);
}

/* ---- probes ------------------------------------------------------------------------ */

static void entry_set_health(struct mc_entry *e, const probe_state *st);

static void on_probe_change(void *arg, const probe_state *st)
{
    market_cache *mc = arg;
    market_health_fn fn = __atomic_load_n(&mc->on_health, __ATOMIC_ACQUIRE);

    struct mc_entry *e;

    log_info("market", "offer %s endpoint %s is %s", st->id, st->endpoint,
             probe_status_name(st->status));
    pthread_rwlock_wrlock(&mc->lock);
    if ((e = snap_find_id(mc->snap, st->id)))
        entry_set_health(e, st);
    pthread_rwlock_unlock(&mc->lock);
    if (fn)
        fn(mc->on_health_arg, st->id, st);
}

static void probes_sync(market_cache *mc);

void market_cache_attach_probes(market_cache *mc, probe_engine *eng, struct event_base *base)
{
    if (mc->probes && !eng) {
        probe_engine_on_change(mc->probes, NULL, NULL);
        if (mc->dns)
            evdns_base_free(mc->dns, 0); /* pending resolutions are dropped, not called */
        mc->dns = NULL;
    }
    mc->probes = eng;
    if (eng) {
        /* /etc/resolv.conf and /etc/hosts; without them only numeric endpoints are probed */
        mc->dns = base ? evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS) : NULL;
        if (!mc->dns && base && (mc->dns = evdns_base_new(base, 0)))
            evdns_base_load_hosts(mc->dns, NULL);
        probe_engine_on_change(eng, on_probe_change, mc);
        probes_sync(mc);
    }
}

void market_cache_on_health_change(market_cache *mc, market_health_fn fn, void *arg)
{
    mc->on_health_arg = arg;
    __atomic_store_n(&mc->on_health, fn, __ATOMIC_RELEASE);
}

/* ---- DNS-name endpoints: resolved asynchronously (evdns) on the probe loop ---------- */

static struct mc_name *name_find(market_cache *mc, const char *id)
{
    struct mc_name *n;

    for (n = mc->names; n && strcmp(n->id, id) != 0; n = n->next)
        ;
    return n;
}

/* Completion of a resolution (on the probe loop, or at once on the caller's thread
 * for /etc/hosts answers): keep the first IPv4 address (else IPv6) and probe it. */
static void dns_done(int err, struct evutil_addrinfo *res, void *arg)
{
    struct mc_dns_req *q = arg, **pp;
    market_cache *mc = q->mc;
    const struct evutil_addrinfo *a, *pick = NULL;
    char ip[64] = "", text[PROBE_ENDPOINT_MAX + 1] = "", perr[160];
    struct mc_name *n;

    for (a = res; a; a = a->ai_next)
        if (!pick || (a->ai_family == AF_INET && pick->ai_family != AF_INET))
            pick = a;
    if (pick && pick->ai_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)pick->ai_addr)->sin_addr, ip, sizeof ip);
    else if (pick && pick->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip,
                  sizeof ip);
    if (ip[0])
        snprintf(text, sizeof text, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, q->port);
    if (res)
        evutil_freeaddrinfo(res);
    pthread_mutex_lock(&mc->names_lock);
    for (pp = &mc->reqs; *pp && *pp != q; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = q->next;
    if ((n = name_find(mc, q->id)) && !strcmp(n->endpoint, q->endpoint)) {
        n->pending = 0;
        snprintf(n->resolved, sizeof n->resolved, "%s", text);
        n->failed_at_ms = text[0] ? 0 : timefmt_now_ms();
    } else {
        text[0] = '\0'; /* withdrawn or changed meanwhile: nothing to probe */
        err = 0;
    }
    pthread_mutex_unlock(&mc->names_lock);
    if (!text[0] && err)
        log_warn("market", "cannot resolve %s for offer %s: %s", q->host, q->id,
                 evutil_gai_strerror(err));
    else if (text[0] && mc->probes &&
             probe_engine_set(mc->probes, q->id, text, perr, sizeof perr) != 0)
        log_warn("market", "cannot probe %s at %s: %s", q->id, text, perr);
    free(q);
}

/*
 * The address to probe for a DNS-name endpoint of offer o, or NULL while it is
 * being resolved (a resolution is queued on *todo when none is pending).
 */
static const char *name_target(market_cache *mc, const market_offer *o, struct mc_dns_req **todo,
                               char *buf, size_t cap)
{
    struct mc_name *n;
    const char *out = NULL;
    int start = 0;

    pthread_mutex_lock(&mc->names_lock);
    n = name_find(mc, o->id);
    if (!n && (n = calloc(1, sizeof *n))) {
        n->next = mc->names;
        mc->names = n;
        snprintf(n->id, sizeof n->id, "%s", o->id);
    }
    if (n && strcmp(n->endpoint, o->endpoint) != 0) { /* new, or the endpoint changed */
        snprintf(n->endpoint, sizeof n->endpoint, "%s", o->endpoint);
        n->resolved[0] = '\0';
        n->pending = 0;
        n->failed_at_ms = 0;
    }
    if (n && n->resolved[0])
        out = snprintf(buf, cap, "%s", n->resolved) > 0 ? buf : NULL;
    else if (n && !n->pending && (!n->failed_at_ms || timefmt_now_ms() - n->failed_at_ms > 30000))
        start = n->pending = 1;
    pthread_mutex_unlock(&mc->names_lock);
    if (start) {
        market_endpoint ep;
        struct mc_dns_req *q = calloc(1, sizeof *q);
        if (q && endpoint_parse(o->endpoint, &ep, NULL, 0) == 0) {
            q->mc = mc;
            q->port = ep.port;
            snprintf(q->id, sizeof q->id, "%s", o->id);
            snprintf(q->endpoint, sizeof q->endpoint, "%s", o->endpoint);
            snprintf(q->host, sizeof q->host, "%s", ep.host);
            q->next = *todo;
            *todo = q;
        } else {
            free(q);
        }
    }
    return out;
}

/* Start the queued resolutions (no lock held: a hosts-file answer calls back at once). */
static void dns_start(market_cache *mc, struct mc_dns_req *todo)
{
    while (todo) {
        struct mc_dns_req *q = todo;
        struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        todo = q->next;
        pthread_mutex_lock(&mc->names_lock);
        q->next = mc->reqs;
        mc->reqs = q;
        pthread_mutex_unlock(&mc->names_lock);
        if (!mc->dns || !evdns_getaddrinfo(mc->dns, q->host, NULL, &hints, dns_done, q)) {
            if (!mc->dns)
                dns_done(EVUTIL_EAI_FAIL, NULL, q);
            /* else: answered already (dns_done ran) or will call back later */
        }
    }
}

/* Forget the names of offers no longer published (caller holds mc->lock). */
static void names_prune(market_cache *mc)
{
    struct mc_name **pp, *n;

    pthread_mutex_lock(&mc->names_lock);
    for (pp = &mc->names; (n = *pp);) {
        if (snap_find_id(mc->snap, n->id)) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        free(n);
    }
    pthread_mutex_unlock(&mc->names_lock);
}

/* What the engine should probe for offer o (NULL: nothing yet). */
static const char *probe_target(market_cache *mc, const market_offer *o, struct mc_dns_req **todo,
                                char *buf, size_t cap)
{
    market_endpoint ep;

    if (endpoint_parse(o->endpoint, &ep, NULL, 0) != 0)
        return NULL;
    if (ep.kind != ENDPOINT_NAME)
        return o->endpoint;
    return name_target(mc, o, todo, buf, cap);
}

/* Make the probe engine probe exactly the published offers' endpoints (names
 * through their resolved address). */
static void probes_sync(market_cache *mc)
{
    probe_state *cur = NULL;
    struct mc_dns_req *todo = NULL;
    long n;
    char err[160], buf[PROBE_ENDPOINT_MAX + 1];

    if (!mc->probes || (n = probe_engine_snapshot(mc->probes, &cur)) < 0)
        return;
    pthread_rwlock_rdlock(&mc->lock);
    for (long k = 0; k < n; k++) { /* withdrawn or gone */
        if (!snap_find_id(mc->snap, cur[k].id))
            probe_engine_remove(mc->probes, cur[k].id);
    }
    for (size_t i = 0; mc->snap && i < mc->snap->n; i++) {
        const market_offer *o = &mc->snap->e[i].o;
        const char *target = probe_target(mc, o, &todo, buf, sizeof buf);
        long lo = 0, hi = n;
        while (lo < hi) { /* the snapshot is sorted by id */
            long mid = lo + (hi - lo) / 2;
            if (strcmp(cur[mid].id, o->id) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (!target) { /* a name being resolved: nothing (or no longer the old address) */
            if (lo < n && !strcmp(cur[lo].id, o->id))
                probe_engine_remove(mc->probes, o->id);
            continue;
        }
        if (lo < n && !strcmp(cur[lo].id, o->id) && !strcmp(cur[lo].endpoint, target))
            continue;
        if (probe_engine_set(mc->probes, o->id, target, err, sizeof err) != 0)
            log_warn("market", "cannot probe %s at %s: %s", o->id, target, err);
    }
    names_prune(mc);
    pthread_rwlock_unlock(&mc->lock);
    free(cur);
    dns_start(mc, todo);
}

int market_cache_health(market_cache *mc, const char *offer_id, probe_state *out)
{
    return mc->probes ? probe_engine_get(mc->probes, offer_id, out) : -1;
}

static void entry_set_health(struct mc_entry *e, const probe_state *st)
{
    e->probed = st != NULL;
    e->o.health = st ? st->status : PROBE_UNKNOWN;
    e->o.srtt_ms = st ? st->srtt_ms : 0;
    e->o.consecutive_failures = st ? st->consecutive_failures : 0;
    e->o.failure_ratio_ppm = st ? st->failure_ratio_ppm : 0;
    e->last_rtt_ms = st ? st->last_rtt_ms : 0;
    e->last_probe_ms = st ? st->last_probe_ms : 0;
}

static void copy_health(struct mc_entry *to, const struct mc_entry *from)
{
    to->probed = from->probed;
    to->o.health = from->o.health;
    to->o.srtt_ms = from->o.srtt_ms;
    to->o.consecutive_failures = from->o.consecutive_failures;
    to->o.failure_ratio_ppm = from->o.failure_ratio_ppm;
    to->last_rtt_ms = from->last_rtt_ms;
    to->last_probe_ms = from->last_probe_ms;
}

/*
 * Copy every endpoint's probe state into the snapshot's entries (one engine
 * lock for all), so resolution reads health without touching the engine.
 * Runs after each refresh (every second) and on every UP/DOWN transition.
 */
static void health_sync(market_cache *mc)
{
    probe_state *ps = NULL;
    long n = mc->probes ? probe_engine_snapshot(mc->probes, &ps) : 0;

    if (n < 0)
        return;
    pthread_rwlock_wrlock(&mc->lock);
    for (size_t i = 0; mc->snap && i < mc->snap->n; i++) {
        struct mc_entry *e = &mc->snap->e[i];
        long lo = 0, hi = n;
        while (lo < hi) { /* the engine's snapshot is sorted by id */
            long mid = lo + (hi - lo) / 2;
            if (strcmp(ps[mid].id, e->o.id) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        entry_set_health(e, lo < n && !strcmp(ps[lo].id, e->o.id) ? &ps[lo] : NULL);
    }
    pthread_rwlock_unlock(&mc->lock);
    free(ps);
}

/* ---- reads ------------------------------------------------------------------------- */

static void fill_live(const struct mc_snap *s, market_offer *o)
{
    int64_t total = (int64_t)o->devices_per_node * o->nodes;

    o->free_devices = total > o->reserved_devices ? total - o->reserved_devices : 0;
    o->capacity_at_ms = s->capacity_at_ms;
}

int market_cache_offer(market_cache *mc, const char *id, market_offer *out)
{
    const struct mc_entry *e;

    pthread_rwlock_rdlock(&mc->lock);
    e = snap_find_id(mc->snap, id);
    if (e) {
        *out = e->o;
        fill_live(mc->snap, out);
    }
    pthread_rwlock_unlock(&mc->lock);
    return e != NULL;
}

size_t market_cache_each(market_cache *mc, market_offer_fn fn, void *arg)
{
    size_t visited = 0;
    market_offer o;

    pthread_rwlock_rdlock(&mc->lock);
    for (size_t i = 0; mc->snap && i < mc->snap->n; i++) {
        o = mc->snap->e[i].o;
        fill_live(mc->snap, &o);
        visited++;
        if (fn(arg, &o))
            break;
    }
    pthread_rwlock_unlock(&mc->lock);
    return visited;
}

int64_t market_cache_generation(market_cache *mc)
{
    int64_t g;

    pthread_rwlock_rdlock(&mc->lock);
    g = mc->snap ? mc->snap->generation : 0;
    pthread_rwlock_unlock(&mc->lock);
    return g;
}

void market_cache_stats_get(market_cache *mc, market_cache_stats *out)
{
    int64_t now = timefmt_now_ms();

    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&mc->lock);
    out->refreshes = mc->refreshes;
    if (mc->snap) {
        out->generation = mc->snap->generation;
        out->offers = (int64_t)mc->snap->n;
        out->capacity_age_ms = mc->snap->capacity_at_ms ? now - mc->snap->capacity_at_ms : -1;
        for (size_t i = 0; i < mc->snap->n; i++) {
            probe_status s = mc->snap->e[i].o.health;
            out->up += s == PROBE_UP;
            out->down += s == PROBE_DOWN;
            out->unknown += s == PROBE_UNKNOWN;
        }
    }
    pthread_rwlock_unlock(&mc->lock);
}

/* ---- resolution -------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Health as of the last sync (at most a second old; transitions at once). */
static void render_health(sbuf *b, const struct mc_entry *e)
{
    char at[40];

    if (!e->probed) {
        sb_printf(b, "\"health\":{\"status\":\"unknown\",\"probed\":false}");
        return;
    }
    timefmt_format(e->last_probe_ms, at, sizeof at);
    sb_printf(b,
              "\"health\":{\"status\":\"%s\",\"probed\":true,\"srtt_ms\":%.3f,\"last_rtt_ms\":%.3f,"
              "\"consecutive_failures\":%d,\"failure_ratio_ppm\":%d,\"last_probe_at\":",
              probe_status_name(e->o.health), e->o.srtt_ms, e->last_rtt_ms,
              e->o.consecutive_failures, (int)e->o.failure_ratio_ppm);
    if (e->last_probe_ms)
        sb_printf(b, "\"%s\"}", at);
    else
        sb_printf(b, "null}");
}

static void render_offer(const struct mc_snap *s, const struct mc_entry *e, sbuf *b)
{
    market_offer o = e->o;
    char at[40];
    int64_t now = timefmt_now_ms();

    fill_live(s, &o);
    timefmt_format(s->capacity_at_ms, at, sizeof at);
    sb_put(b, e->doc, e->doclen);
    sb_printf(b,
              "\"capacity\":{\"total_devices\":%lld,\"reserved_devices\":%lld,"
              "\"free_devices\":%lld,\"as_of\":\"%s\",\"age_ms\":%lld},",
              (long long)o.devices_per_node * o.nodes, (long long)o.reserved_devices,
              (long long)o.free_devices, at, (long long)(now - s->capacity_at_ms));
    render_health(b, e);
    sb_printf(b, ",\"generation\":%lld}", (long long)s->generation);
}

/* A prefix: the handles under a region, or the offers under region/handle. */
static int render_prefix(const struct mc_snap *s, const market_ident *id, sbuf *b)
{
    size_t n = 0, count = 0;
    char key[IDENT_MAX_LEN + 2];
    const char *last = "";

    snprintf(key, sizeof key, "%s/", id->text);
    sb_printf(b, "{\"kind\":\"%s\",\"prefix\":\"%s\",\"children\":[",
              id->nlabels == 1 ? "region" : "provider", id->text);
    for (size_t i = snap_lower_bound(s, key);
         i < s->n && ident_under(s->e[i].o.identifier, id->text); i++) {
        const market_offer *o = &s->e[i].o;
        int64_t total = (int64_t)o->devices_per_node * o->nodes;
        count++;
        if (id->nlabels == 1) {
            if (!strcmp(last, o->handle)) {
                continue;
            }
            last = o->handle;
            sb_printf(b, "%s{\"kind\":\"provider\",\"identifier\":\"%s/%s\",\"handle\":\"%s\"}",
                      n++ ? "," : "", o->region, o->handle, o->handle);
            continue;
        }
        sb_printf(b,
                  "%s{\"kind\":\"offer\",\"identifier\":\"%s\",\"offer_id\":\"%s\","
                  "\"zone\":\"%s\",\"device\":\"%s\",\"free_devices\":%lld,\"health\":\"%s\"}",
                  n++ ? "," : "", o->identifier, o->id, o->zone, o->device_id,
                  (long long)(total > o->reserved_devices ? total - o->reserved_devices : 0),
                  probe_status_name(o->health));
    }
    sb_printf(b, "],\"offers\":%zu,\"generation\":%lld}", count, (long long)s->generation);
    return count > 0;
}

int market_cache_resolve(market_cache *mc, const market_ident *id, char **out, size_t *outlen)
{
    sbuf b = {.p = malloc(4096), .cap = 4096};
    int found = 0;

    if (!b.p)
        return -1;
    pthread_rwlock_rdlock(&mc->lock);
    if (mc->snap && id->nlabels == IDENT_MAX_LABELS) {
        size_t i = snap_lower_bound(mc->snap, id->text);
        if (i < mc->snap->n && !strcmp(mc->snap->e[i].o.identifier, id->text)) {
            render_offer(mc->snap, &mc->snap->e[i], &b);
            found = 1;
        }
    } else if (mc->snap) {
        found = render_prefix(mc->snap, id, &b);
    }
    pthread_rwlock_unlock(&mc->lock);
    if (b.oom || !found) {
        free(b.p);
        return b.oom ? -1 : 0;
    }
    *out = b.p;
    *outlen = b.len;
    return 1;
}

/* ---- refresh ------------------------------------------------------------------------- */

static const char sql_heads[] =
    "SELECT generation, (SELECT count(*) FROM pricing_policy_versions) FROM market_generation";
static const char sql_published[] =
    "SELECT " MARKET_OFFER_COLUMNS " FROM offers o WHERE o.state = 'published' ORDER BY o.id";
static const char sql_capacity[] =
    "SELECT (extract(epoch FROM now()) * 1000)::bigint, offer_id, sum(count) FROM orders "
    "WHERE state IN ('pending', 'placed', 'running', 'migrating') AND start_at <= now() "
    "AND end_at > now() GROUP BY offer_id "
    "UNION ALL SELECT (extract(epoch FROM now()) * 1000)::bigint, NULL, NULL";
static const char sql_bump[] =
    "UPDATE market_generation SET generation = generation + 1 RETURNING generation";

int market_cache_bump(db_conn *db)
{
    return db_command(db, sql_bump, 0, NULL);
}

static int entry_build(market_cache *mc, struct mc_entry *e, const market_offer *o)
{
    e->o = *o;
    e->doc = render_static(mc, o, &e->doclen);
    return e->doc ? 0 : -1;
}

/* Build a snapshot of the published offers. NULL with *rc set on failure. */
static struct mc_snap *snap_load(db_conn *db, market_cache *mc, int *rc)
{
    PGresult *r = db_exec(db, sql_published, 0, NULL);
    struct mc_snap *s;
    int n;

    if (!r) {
        *rc = db_last_status(db);
        return NULL;
    }
    n = PQntuples(r);
    s = calloc(1, sizeof *s);
    if (s)
        s->e = calloc((size_t)(n ? n : 1), sizeof *s->e);
    for (int i = 0; s && s->e && i < n; i++) {
        market_offer o;
        if (market_offer_from_row(r, i, &o) != 0) {
            log_error("market", "offer %s in the database does not parse", PQgetvalue(r, i, 0));
            continue;
        }
        if (entry_build(mc, &s->e[s->n], &o) == 0)
            s->n++;
    }
    PQclear(r);
    if (!s || !s->e || snap_index(s) != 0) {
        snap_free(s);
        *rc = DB_FAILED;
        return NULL;
    }
    return s;
}

static int refresh_capacity(db_conn *db, market_cache *mc)
{
    PGresult *r = db_exec(db, sql_capacity, 0, NULL);

    if (!r)
        return db_last_status(db);
    pthread_rwlock_wrlock(&mc->lock);
    if (mc->snap) {
        for (size_t i = 0; i < mc->snap->n; i++)
            mc->snap->e[i].o.reserved_devices = 0;
        for (int i = 0; i < PQntuples(r); i++) {
            struct mc_entry *e =
                PQgetisnull(r, i, 1) ? NULL : snap_find_id(mc->snap, PQgetvalue(r, i, 1));
            mc->snap->capacity_at_ms = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            if (e)
                e->o.reserved_devices = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        }
    }
    pthread_rwlock_unlock(&mc->lock);
    PQclear(r);
    return DB_OK;
}

static void current_catalog(market_cache *mc, char *out, size_t cap)
{
    const cat_catalog *cat;
    const cu_eff_table *eff;

    mcache_read_lock(mc->metering, &cat, &eff);
    snprintf(out, cap, "%s/%u", cat ? cat_version(cat) : "", eff ? eff->version : 0);
    mcache_read_unlock(mc->metering);
}

int market_cache_refresh(db_conn *db, market_cache *mc, int force)
{
    PGresult *r = db_exec(db, sql_heads, 0, NULL);
    int64_t gen, epoch;
    char catalog[72];
    unsigned long commits;
    struct mc_snap *s, *old = NULL;
    int stale, rc = DB_OK;

    if (!r)
        return db_last_status(db);
    gen = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    epoch = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    current_catalog(mc, catalog, sizeof catalog);
    pthread_rwlock_rdlock(&mc->lock);
    stale = force || !mc->snap || mc->snap->generation != gen || mc->snap->policy_epoch != epoch ||
            strcmp(mc->snap->catalog, catalog) != 0;
    commits = mc->commits;
    pthread_rwlock_unlock(&mc->lock);
    if (stale) {
        if (!(s = snap_load(db, mc, &rc)))
            return rc;
        s->generation = gen;
        s->policy_epoch = epoch;
        snprintf(s->catalog, sizeof s->catalog, "%s", catalog);
        pthread_rwlock_wrlock(&mc->lock);
        if (mc->commits == commits) { /* else a newer local change: rebuild next tick */
            old = mc->snap;
            if (old) /* keep the live figures until the capacity read below */
                for (size_t i = 0; i < s->n; i++) {
                    const struct mc_entry *e = snap_find_id(old, s->e[i].o.id);
                    s->e[i].o.reserved_devices = e ? e->o.reserved_devices : 0;
                    if (e && !strcmp(e->o.endpoint, s->e[i].o.endpoint))
                        copy_health(&s->e[i], e);
                }
            s->capacity_at_ms = old ? old->capacity_at_ms : 0;
            mc->snap = s;
            mc->refreshes++;
            s = NULL;
        }
        pthread_rwlock_unlock(&mc->lock);
        snap_free(s);
        snap_free(old);
        probes_sync(mc);
    }
    health_sync(mc);
    return refresh_capacity(db, mc);
}

/* ---- local changes ---------------------------------------------------------------------- */

uint64_t market_cache_token(void)
{
    static uint64_t next;
    return __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED);
}

void market_cache_stage(market_cache *mc, const market_offer *o, const char *state, uint64_t token)
{
    struct mc_staged *st = calloc(1, sizeof *st);

    if (!st)
        return; /* the janitor's refresh catches up within a second */
    st->token = token;
    st->published = !strcmp(state, "published");
    st->entry.o = *o;
    if (st->published && entry_build(mc, &st->entry, o) != 0) {
        free(st);
        return;
    }
    pthread_mutex_lock(&mc->stage_lock);
    st->next = mc->staged;
    mc->staged = st;
    pthread_mutex_unlock(&mc->stage_lock);
}

/* Take the most recent staged change of offer_id off the list (NULL if none). */
static struct mc_staged *unstage_offer(market_cache *mc, const char *offer_id)
{
    struct mc_staged **pp, *found = NULL;

    pthread_mutex_lock(&mc->stage_lock);
    for (pp = &mc->staged; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->entry.o.id, offer_id)) {
            found = *pp;
            *pp = found->next;
            break;
        }
    pthread_mutex_unlock(&mc->stage_lock);
    return found;
}

void market_cache_unstage(market_cache *mc, uint64_t token)
{
    struct mc_staged **pp, *found = NULL;

    pthread_mutex_lock(&mc->stage_lock);
    for (pp = &mc->staged; *pp; pp = &(*pp)->next)
        if ((*pp)->token == token) {
            found = *pp;
            *pp = found->next;
            break;
        }
    pthread_mutex_unlock(&mc->stage_lock);
    if (found)
        free(found->entry.doc);
    free(found);
}

/* A copy of s without offer_id and, when add is not NULL, with add (taken over). */
static struct mc_snap *snap_with(const struct mc_snap *s, const char *offer_id,
                                 struct mc_entry *add)
{
    size_t n = s ? s->n : 0;
    struct mc_snap *c = calloc(1, sizeof *c);

    if (!c || !(c->e = calloc(n + 1, sizeof *c->e))) {
        free(c);
        return NULL;
    }
    if (s) {
        c->generation = s->generation;
        c->policy_epoch = s->policy_epoch;
        c->capacity_at_ms = s->capacity_at_ms;
        snprintf(c->catalog, sizeof c->catalog, "%s", s->catalog);
    }
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s->e[i].o.id, offer_id))
            continue;
        c->e[c->n] = s->e[i];
        c->e[c->n].doc = malloc(s->e[i].doclen + 1);
        if (!c->e[c->n].doc) {
            snap_free(c);
            return NULL;
        }
        memcpy(c->e[c->n].doc, s->e[i].doc, s->e[i].doclen + 1);
        c->n++;
    }
    if (add) {
        const struct mc_entry *prev = s ? snap_find_id(s, offer_id) : NULL;
        add->o.reserved_devices = prev ? prev->o.reserved_devices : 0;
        if (prev && !strcmp(prev->o.endpoint, add->o.endpoint))
            copy_health(add, prev);
        c->e[c->n++] = *add;
        add->doc = NULL;
    }
    if (snap_index(c) != 0) {
        snap_free(c);
        return NULL;
    }
    return c;
}

void market_cache_commit(market_cache *mc, const char *offer_id)
{
    struct mc_staged *st = offer_id ? unstage_offer(mc, offer_id) : NULL;
    struct mc_snap *c, *old = NULL;

    if (!st)
        return;
    pthread_rwlock_wrlock(&mc->lock);
    c = snap_with(mc->snap, offer_id, st->published ? &st->entry : NULL);
    if (c) {
        old = mc->snap;
        mc->snap = c;
        /* the database generation moved: a refresh will re-read everything */
        c->generation = -1;
    }
    mc->commits++;
    pthread_rwlock_unlock(&mc->lock);
    snap_free(old);
    free(st->entry.doc);
    free(st);
    probes_sync(mc);
    health_sync(mc);
}

/* ---- /metrics ----------------------------------------------------------------------------- */

void market_cache_metrics(void *arg, FILE *f)
{
    market_cache *mc = arg;
    market_cache_stats st;
    probe_state *ps = NULL;
    long n = mc->probes ? probe_engine_snapshot(mc->probes, &ps) : 0;

    market_cache_stats_get(mc, &st);
    fprintf(f,
            "# HELP tally_market_generation Offer generation of this process's resolution cache.\n"
            "# TYPE tally_market_generation gauge\ntally_market_generation %lld\n"
            "# HELP tally_market_offers Published offers in the resolution cache.\n"
            "# TYPE tally_market_offers gauge\ntally_market_offers %lld\n"
            "# HELP tally_market_offers_up Published offers whose endpoint probes up.\n"
            "# TYPE tally_market_offers_up gauge\ntally_market_offers_up %lld\n"
            "# HELP tally_market_offers_down Published offers whose endpoint probes down.\n"
            "# TYPE tally_market_offers_down gauge\ntally_market_offers_down %lld\n"
            "# HELP tally_market_offers_unknown Published offers not probed yet (or by name).\n"
            "# TYPE tally_market_offers_unknown gauge\ntally_market_offers_unknown %lld\n"
            "# HELP tally_market_capacity_age_ms Age of the free-capacity figures.\n"
            "# TYPE tally_market_capacity_age_ms gauge\ntally_market_capacity_age_ms %lld\n"
            "# HELP tally_market_cache_rebuilds_total Full rebuilds of the resolution cache.\n"
            "# TYPE tally_market_cache_rebuilds_total counter\n"
            "tally_market_cache_rebuilds_total %lld\n",
            (long long)st.generation, (long long)st.offers, (long long)st.up, (long long)st.down,
            (long long)st.unknown, (long long)st.capacity_age_ms, (long long)st.refreshes);
    if (n <= 0)
        return;
    fprintf(f, "# HELP tally_probe_up 1 when the endpoint's last probes are up, 0 down or "
               "unknown.\n# TYPE tally_probe_up gauge\n");
    for (long k = 0; k < n; k++)
        fprintf(f, "tally_probe_up{offer=\"%s\"} %d\n", ps[k].id, ps[k].status == PROBE_UP);
    fprintf(f, "# HELP tally_probe_srtt_ms Smoothed connect round-trip time (EWMA).\n"
               "# TYPE tally_probe_srtt_ms gauge\n");
    for (long k = 0; k < n; k++)
        fprintf(f, "tally_probe_srtt_ms{offer=\"%s\"} %.3f\n", ps[k].id, ps[k].srtt_ms);
    fprintf(f, "# HELP tally_probe_failures_total Failed probes of the endpoint.\n"
               "# TYPE tally_probe_failures_total counter\n");
    for (long k = 0; k < n; k++)
        fprintf(f, "tally_probe_failures_total{offer=\"%s\"} %llu\n", ps[k].id,
                (unsigned long long)ps[k].failures);
    free(ps);
}
