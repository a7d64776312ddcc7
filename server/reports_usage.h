/*
 * reports_usage.h - the usage report: usage records per group and currency,
 * or one row per record (group_by=record), as a report_spec for reports_stream.
 */
#ifndef TALLY_REPORTS_USAGE_H
#define TALLY_REPORTS_USAGE_H

#include "reports_stream.h"

/* reports_usage_group - the SQL group for a group_by name; -1 when unknown. */
int reports_usage_group(const char *group_by);

/*
 * reports_usage_spec - fill spec for group (from reports_usage_group) over
 * usage records starting in [from, to) (timestamptz text), seen by tenant /
 * provider (NULL = any). Strings are copied by reports_stream.
 */
void reports_usage_spec(report_spec *spec, int group, const char *from, const char *to,
                        const char *tenant, const char *provider, report_format format);

#endif
