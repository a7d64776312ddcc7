/* handlers_pricing.h - pricing policies and quotes over HTTP (handlers_pricing.c). */
#ifndef TALLY_HANDLERS_PRICING_H
#define TALLY_HANDLERS_PRICING_H

#include "http.h"

#endif
