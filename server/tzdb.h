/*
 * tzdb.h - IANA time zones from the system's compiled tzdata (TZif files in
 * /usr/share/zoneinfo, or $TZDIR), turned into the (utc_start_ms, offset_s)
 * transition list the pricing engine takes (pricing/policy.h, pricing_tz).
 *
 * Reads RFC 8536 TZif version 2+ files (64-bit data) and, for instants after
 * the file's last transition, extends the list from the footer's POSIX TZ
 * rule (the common "STDoff[DST[off],Mm.w.d[/time],Mm.w.d[/time]]" form).
 * Loaded zones are cached for the life of the process: zone files only change
 * with a tzdata upgrade, which needs a restart to take effect.
 */
#ifndef TALLY_TZDB_H
#define TALLY_TZDB_H

#include "policy.h"

#include <stddef.h>
#include <stdint.h>

/*
 * tzdb_zone - a zone covering [INT64_MIN, until_ms). The transitions live in
 * the process-wide cache (never freed before exit). Returns 0, or -1 with a
 * message in err (unknown zone, unreadable or malformed file, bad name).
 */
int tzdb_zone(const char *name, int64_t until_ms, pricing_tz *out, char *err, size_t errlen);

/* tzdb_parse - pure: transitions from TZif bytes up to until_ms (caller frees *tr). */
int tzdb_parse(const unsigned char *data, size_t len, int64_t until_ms, pricing_tz_transition **tr,
               size_t *n, char *err, size_t errlen);

/* tzdb_cache_free - release the cache (at exit, for leak checkers). */
void tzdb_cache_free(void);

#endif
