/*
 * tzdb.c - TZif parsing and the POSIX TZ footer rule.
 * Invariant: every list produced starts at INT64_MIN and is strictly
 * increasing in utc_start_ms, as pricing_tz_init requires.
 */
#include "tzdb.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_MAX_FILE (1 << 20)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of(int64_t unix_s)
{
    int64_t z = (unix_s >= 0 ? unix_s : unix_s - 86399) / 86400 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    return yoe + era * 400 + (m <= 2);
}

/* ---- POSIX TZ footer -------------------------------------------------------- */

struct posix_rule {
    int month, week, wday; /* Mm.w.d */
    int32_t time_s;        /* local time of day of the change */
};

struct posix_tz {
    int32_t std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    struct posix_rule start, end;
};

static const char *skip_name(const char *s)
{
    if (*s == '<') {
        const char *e = strchr(s, '>');
        return e ? e + 1 : NULL;
    }
    while (isalpha((unsigned char)*s))
        s++;
    return s;
}

/* [+-]hh[:mm[:ss]] -> seconds; returns the end or NULL. */
static const char *parse_hms(const char *s, int32_t *out)
{
    int sign = 1;
    long h = 0, m = 0, sec = 0;

    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return NULL;
    h = strtol(s, (char **)&s, 10);
    if (*s == ':') {
        m = strtol(s + 1, (char **)&s, 10);
        if (*s == ':')
            sec = strtol(s + 1, (char **)&s, 10);
    }
    if (h > 167 || m > 59 || sec > 59)
        return NULL;
    *out = (int32_t)(sign * (h * 3600 + m * 60 + sec));
    return s;
}

static const char *parse_rule(const char *s, struct posix_rule *r)
{
    if (*s != 'M')
        return NULL; /* Jn and n forms are not used by current tzdata */
    r->month = (int)strtol(s + 1, (char **)&s, 10);
    if (*s != '.')
        return NULL;
    r->week = (int)strtol(s + 1, (char **)&s, 10);
    if (*s != '.')
        return NULL;
    r->wday = (int)strtol(s + 1, (char **)&s, 10);
    r->time_s = 7200;
    if (*s == '/' && !(s = parse_hms(s + 1, &r->time_s)))
        return NULL;
    if (r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->wday < 0 || r->wday > 6)
        return NULL;
    return s;
}

static int parse_posix(const char *s, struct posix_tz *tz)
{
    int32_t off;

    memset(tz, 0, sizeof *tz);
    if (!(s = skip_name(s)) || !(s = parse_hms(s, &off)))
        return -1;
    tz->std_off = -off; /* POSIX offsets are west-positive */
    if (!*s)
        return 0;
    if (!(s = skip_name(s)))
        return -1;
    tz->has_dst = 1;
    tz->dst_off = tz->std_off + 3600;
    if (*s && *s != ',') {
        if (!(s = parse_hms(s, &off)))
            return -1;
        tz->dst_off = -off;
    }
    if (*s != ',' || !(s = parse_rule(s + 1, &tz->start)) || *s != ',' ||
        !(s = parse_rule(s + 1, &tz->end)) || *s)
        return -1;
    return 0;
}

/* UTC seconds at which rule r fires in year y, given the offset in force before it. */
static int64_t rule_utc(const struct posix_rule *r, int64_t y, int32_t off_before)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int dim = mdays[r->month - 1] + (r->month == 2 && leap);
    int64_t first = days_from_civil(y, r->month, 1);
    int wd_first = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    int day = 1 + (r->wday - wd_first + 7) % 7 + (r->week - 1) * 7;

    if (day > dim)
        day -= 7;
    return (first + day - 1) * 86400 + r->time_s - off_before;
}

/* ---- list building ------------------------------------------------------------ */

struct list {
    pricing_tz_transition *v;
    size_t n, cap;
};

static int push(struct list *l, int64_t at_ms, int32_t off)
{
    if (l->n && l->v[l->n - 1].offset_s == off)
        return 0; /* no change */
    if (l->n && at_ms <= l->v[l->n - 1].utc_start_ms)
        return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        pricing_tz_transition *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].utc_start_ms = at_ms;
    l->v[l->n].offset_s = off;
    l->n++;
    return 0;
}

static int extend_posix(struct list *l, const struct posix_tz *tz, int64_t after_s,
                        int64_t until_ms)
{
    int64_t y_end = year_of(until_ms / 1000) + 1;

    if (!tz->has_dst)
        return l->n ? push(l, (after_s + 1) * 1000, tz->std_off) : push(l, INT64_MIN, tz->std_off);
    for (int64_t y = year_of(after_s); y <= y_end; y++) {
        int64_t on = rule_utc(&tz->start, y, tz->std_off);
        int64_t off = rule_utc(&tz->end, y, tz->dst_off);
        int64_t a = on < off ? on : off, b = on < off ? off : on;
        int32_t oa = on < off ? tz->dst_off : tz->std_off,
                ob = on < off ? tz->std_off : tz->dst_off;
        if (a > after_s && push(l, a * 1000, oa) != 0)
            return -1;
        if (b > after_s && push(l, b * 1000, ob) != 0)
            return -1;
    }
    return 0;
}

int tzdb_parse(const unsigned char *d, size_t len, int64_t until_ms, pricing_tz_transition **tr,
               size_t *n, char *err, size_t errlen)
{
    struct list l = {0};
    uint32_t isut, isstd, leap, timecnt, typecnt, charcnt;
    size_t v1, p, need;
    int64_t last_s = INT64_MIN / 1000;
    struct posix_tz ptz;
    char footer[128];

    *tr = NULL;
    *n = 0;
    if (len < 44 || memcmp(d, "TZif", 4) != 0 || d[4] < '2')
        goto bad;
#define COUNTS(at)                                                                                 \
    isut = be32(d + (at) + 20), isstd = be32(d + (at) + 24), leap = be32(d + (at) + 28),           \
    timecnt = be32(d + (at) + 32), typecnt = be32(d + (at) + 36), charcnt = be32(d + (at) + 40)
    COUNTS(0);
    v1 = 44 + (size_t)timecnt * 5 + (size_t)typecnt * 6 + charcnt + (size_t)leap * 8 + isstd + isut;
    if (v1 + 44 > len || memcmp(d + v1, "TZif", 4) != 0)
        goto bad;
    COUNTS(v1);
#undef COUNTS
    p = v1 + 44;
    need = (size_t)timecnt * 9 + (size_t)typecnt * 6 + charcnt + (size_t)leap * 12 + isstd + isut;
    if (typecnt == 0 || typecnt > 256 || p + need > len)
        goto bad;
    {
        const unsigned char *times = d + p, *idx = times + (size_t)timecnt * 8;
        const unsigned char *types = idx + timecnt;
        if (push(&l, INT64_MIN, (int32_t)be32(types)) != 0)
            goto bad;
        for (uint32_t i = 0; i < timecnt; i++) {
            int64_t t = be64(times + (size_t)i * 8);
            if (idx[i] >= typecnt || t <= INT64_MIN / 1000 || t >= INT64_MAX / 1000)
                goto bad;
            if (push(&l, t * 1000, (int32_t)be32(types + (size_t)idx[i] * 6)) != 0)
                goto bad;
            last_s = t;
        }
    }
    p += need;
    /* footer: "\nTZ\n" */
    if (p < len && d[p] == '\n') {
        const unsigned char *e = memchr(d + p + 1, '\n', len - p - 1);
        size_t fl = e ? (size_t)(e - d - p - 1) : 0;
        if (e && fl > 0 && fl < sizeof footer) {
            memcpy(footer, d + p + 1, fl);
            footer[fl] = '\0';
            if (parse_posix(footer, &ptz) != 0) {
                snprintf(err, errlen, "unsupported TZ rule '%s'", footer);
                free(l.v);
                return -1;
            }
            if (last_s * 1000 < until_ms &&
                extend_posix(&l, &ptz, last_s == INT64_MIN / 1000 ? 0 : last_s, until_ms) != 0)
                goto bad;
        }
    }
    *tr = l.v;
    *n = l.n;
    return 0;
bad:
    free(l.v);
    snprintf(err, errlen, "not a valid TZif (version 2+) file");
    return -1;
}

/* ---- the cache ---------------------------------------------------------------- */

#define TZ_DECADE_MS 315576000000LL /* 3652.5 days */

struct cached_zone {
    char name[PRICING_TZ_NAME_MAX + 1];
    int64_t until_ms;
    pricing_tz_transition *tr;
    size_t n;
    struct cached_zone *next;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cached_zone *cache;

static int name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > PRICING_TZ_NAME_MAX || s[0] == '/' || strstr(s, ".."))
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") == n;
}

static unsigned char *read_zone_file(const char *name, size_t *len, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    char path[512];
    unsigned char *buf;
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "unknown time zone '%s'", name);
        return NULL;
    }
    buf = malloc(TZ_MAX_FILE);
    *len = buf ? fread(buf, 1, TZ_MAX_FILE, f) : 0;
    fclose(f);
    if (!buf || *len == 0 || *len == TZ_MAX_FILE) {
        free(buf);
        snprintf(err, errlen, "cannot read time zone '%s'", name);
        return NULL;
    }
    return buf;
}

int tzdb_zone(const char *name, int64_t until_ms, pricing_tz *out, char *err, size_t errlen)
{
    struct cached_zone *z;
    pricing_error perr;
    unsigned char *buf;
    size_t len;
    int rc = -1;

    if (!name || !name_ok(name)) {
        snprintf(err, errlen, "'%s' is not a time zone name", name ? name : "");
        return -1;
    }
    /* Round the horizon up to the next whole decade (of the epoch), so every
     * request in a decade shares one cache entry. (Adding a decade instead made
     * each later instant miss the cache: a file read and a new entry per quote.) */
    if (until_ms < INT64_MAX - TZ_DECADE_MS * 2)
        until_ms = (until_ms / TZ_DECADE_MS + 1) * TZ_DECADE_MS;
    pthread_mutex_lock(&cache_mu);
    for (z = cache; z; z = z->next)
        if (!strcmp(z->name, name) && z->until_ms >= until_ms)
            break;
    if (!z && (buf = read_zone_file(name, &len, err, errlen))) {
        z = calloc(1, sizeof *z);
        if (z && tzdb_parse(buf, len, until_ms, &z->tr, &z->n, err, errlen) == 0) {
            snprintf(z->name, sizeof z->name, "%s", name);
            z->until_ms = until_ms;
            z->next = cache;
            cache = z;
        } else {
            free(z);
            z = NULL;
        }
        free(buf);
    }
    if (z)
        rc = pricing_tz_init(out, name, z->tr, z->n, &perr) == PRICING_OK ? 0 : -1;
    if (z && rc != 0)
        snprintf(err, errlen, "time zone '%s': %s", name, perr.message);
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

void tzdb_cache_free(void)
{
    pthread_mutex_lock(&cache_mu);
    while (cache) {
        struct cached_zone *next = cache->next;
        free(cache->tr);
        free(cache);
        cache = next;
    }
    pthread_mutex_unlock(&cache_mu);
}
