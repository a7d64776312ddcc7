/*
 * scope.c - the single place where caller-to-owner visibility is decided.
 */
#include "scope.h"

#include <string.h>

int scope_sees_all(const http_caller *who)
{
    return (who->role & (ROLE_ADMIN | ROLE_FINANCE)) != 0;
}

int scope_may_act_for(const http_caller *who, const char *account_id)
{
    return (who->role & ROLE_ADMIN) || (account_id && !strcmp(who->account_id, account_id));
}

const char *scope_owner_filter(const http_caller *who)
{
    return scope_sees_all(who) ? NULL : who->account_id;
}
