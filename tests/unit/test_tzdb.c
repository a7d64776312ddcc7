/*
 * Unit tests for server/tzdb.c and server/timefmt.c against the system's tzdata
 * (Debian's tzdata package, a dependency of postgresql). Expected instants are
 * from the EU and US daylight-saving rules:
 *   EU: last Sunday of March 01:00 UTC -> summer; last Sunday of October 01:00 UTC -> winter.
 *   US: second Sunday of March 02:00 local; first Sunday of November 02:00 local.
 */
#include "timefmt.h"
#include "tzdb.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t at(const char *iso)
{
    int64_t ms;
    cr_assert_eq(timefmt_parse(iso, &ms), 0, "bad test time %s", iso);
    return ms;
}

static int32_t offset(const char *zone, const char *iso)
{
    pricing_tz tz;
    char err[256];
    int32_t off;
    int64_t until;
    cr_assert_eq(tzdb_zone(zone, at(iso) + 1000, &tz, err, sizeof err), 0, "%s", err);
    cr_assert_eq(pricing_tz_offset_at(&tz, at(iso), &off, &until), PRICING_OK);
    return off;
}

Test(tzdb, berlin_summer_and_winter)
{
    cr_assert_eq(offset("Europe/Berlin", "2026-01-15T12:00:00Z"), 3600);
    cr_assert_eq(offset("Europe/Berlin", "2026-07-15T12:00:00Z"), 7200);
    /* 2026-03-29 is the last Sunday of March: the change is at 01:00 UTC */
    cr_assert_eq(offset("Europe/Berlin", "2026-03-29T00:59:59Z"), 3600);
    cr_assert_eq(offset("Europe/Berlin", "2026-03-29T01:00:00Z"), 7200);
    cr_assert_eq(offset("Europe/Berlin", "2026-10-25T00:59:59Z"), 7200);
    cr_assert_eq(offset("Europe/Berlin", "2026-10-25T01:00:00Z"), 3600);
}

Test(tzdb, beyond_the_file_uses_the_posix_rule)
{
    /* 2050: last Sunday of March is the 27th, of October the 30th */
    cr_assert_eq(offset("Europe/Berlin", "2050-03-27T00:59:59Z"), 3600);
    cr_assert_eq(offset("Europe/Berlin", "2050-03-27T01:00:00Z"), 7200);
    cr_assert_eq(offset("Europe/Berlin", "2050-10-30T01:00:00Z"), 3600);
    /* New York 2040: second Sunday of March = 11th (02:00 EST = 07:00 UTC),
     * first Sunday of November = 4th (02:00 EDT = 06:00 UTC) */
    cr_assert_eq(offset("America/New_York", "2040-03-11T06:59:59Z"), -18000);
    cr_assert_eq(offset("America/New_York", "2040-03-11T07:00:00Z"), -14400);
    cr_assert_eq(offset("America/New_York", "2040-11-04T05:59:59Z"), -14400);
    cr_assert_eq(offset("America/New_York", "2040-11-04T06:00:00Z"), -18000);
}

Test(tzdb, fixed_zones)
{
    cr_assert_eq(offset("Asia/Kolkata", "2030-06-01T00:00:00Z"), 19800);
    cr_assert_eq(offset("UTC", "2030-06-01T00:00:00Z"), 0);
}

Test(tzdb, bad_names_are_refused)
{
    pricing_tz tz;
    char err[256];
    cr_assert_eq(tzdb_zone("Mars/Olympus_Mons", 0, &tz, err, sizeof err), -1);
    cr_assert(strstr(err, "unknown time zone"), "%s", err);
    cr_assert_eq(tzdb_zone("../../etc/passwd", 0, &tz, err, sizeof err), -1);
    cr_assert_eq(tzdb_zone("/etc/localtime", 0, &tz, err, sizeof err), -1);
    cr_assert_eq(tzdb_zone("", 0, &tz, err, sizeof err), -1);
}

/* A zone is read from its file once: later instants in the same decade come
 * from the cache (the quote path asks for every quote's end instant), even
 * once the file is gone. */
Test(tzdb, later_instants_are_served_from_the_cache)
{
    char dir[] = "/tmp/tally-tzdb-XXXXXX", sub[64], path[96], buf[8192];
    FILE *in = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb"), *out;
    size_t n;
    pricing_tz tz;
    char err[256];

    cr_assert(in && mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/Test", dir);
    snprintf(path, sizeof path, "%s/Zone_A", sub);
    cr_assert_eq(mkdir(sub, 0700), 0);
    out = fopen(path, "wb");
    cr_assert(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    setenv("TZDIR", dir, 1);
    cr_assert_eq(tzdb_zone("Test/Zone_A", at("2026-11-28T10:00:00Z"), &tz, err, sizeof err), 0,
                 "%s", err);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    cr_assert_eq(tzdb_zone("Test/Zone_A", at("2026-11-28T10:00:01Z"), &tz, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(tzdb_zone("Test/Zone_A", at("2029-06-01T00:00:00Z"), &tz, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(tzdb_zone("Test/Zone_Gone", at("2026-11-28T10:00:00Z"), &tz, err, sizeof err), -1);
}

Test(tzdb, garbage_is_not_a_zone)
{
    pricing_tz_transition *tr;
    size_t n;
    char err[128];
    const unsigned char junk[64] = "TZif2 but not really";
    cr_assert_eq(tzdb_parse(junk, sizeof junk, 0, &tr, &n, err, sizeof err), -1);
}

Test(timefmt, round_trip_and_strictness)
{
    char buf[40];
    int64_t ms;
    cr_assert_eq(timefmt_parse("2026-12-01T09:00:00Z", &ms), 0);
    cr_assert_eq(ms, 1796115600000LL);
    timefmt_format(ms + 5, buf, sizeof buf);
    cr_assert_str_eq(buf, "2026-12-01T09:00:00.005Z");
    cr_assert_eq(timefmt_parse(buf, &ms), 0);
    cr_assert_eq(ms, 1796115600005LL);
    cr_assert_eq(timefmt_parse("2026-02-30T00:00:00Z", &ms), -1);
    cr_assert_eq(timefmt_parse("2026-12-01T09:00:00+01:00", &ms), -1);
    cr_assert_eq(timefmt_parse("2026-12-01 09:00:00Z", &ms), -1);
    cr_assert_eq(timefmt_parse("2026-12-01T09:00:00.1234Z", &ms), -1);
    cr_assert_eq(timefmt_parse("2026-12-01T24:00:00Z", &ms), -1);
    timefmt_period(ms, buf);
    cr_assert_str_eq(buf, "2026-12");
}
