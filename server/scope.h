/*
 * scope.h - who may see what. Every query that reads owned data goes through
 * here, so the rule is written once: admin and finance see every account's
 * data; tenants and providers see only their own.
 */
#ifndef TALLY_SCOPE_H
#define TALLY_SCOPE_H

#include "http.h"

/* scope_sees_all - 1 for roles that read across accounts (admin, finance). */
int scope_sees_all(const http_caller *who);
/* scope_may_act_for - 1 when who may read or manage data owned by account_id. */
int scope_may_act_for(const http_caller *who, const char *account_id);
/*
 * scope_owner_filter - the value to bind in "($n::text IS NULL OR owner_id = $n)":
 * NULL when the caller sees all, otherwise its own account id.
 */
const char *scope_owner_filter(const http_caller *who);

#endif
