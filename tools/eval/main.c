/*
 * main.c - tally-eval: offline evaluation of Tally's metering.
 *   tally-eval estimates --swf FILE   duration estimates on a job trace
 *   tally-eval units --csv FILE       CU invariance on cross-hardware results
 *   tally-eval placement --latency F  placement policies on a simulated market
 */
#include <stdio.h>
#include <string.h>

#include "eval.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "estimates") == 0)
        return eval_estimates(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "units") == 0)
        return eval_units(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "placement") == 0)
        return eval_placement(argc - 1, argv + 1);
    fprintf(stderr, "usage: tally-eval estimates --swf FILE\n"
                    "       tally-eval units --csv FILE [--catalog FILE] [--calibrate FILE]\n"
                    "                        [--cv loo-workload|halves]\n"
                    "       tally-eval placement --latency FILE [--jobs N] [--seed S]\n");
    return 2;
}
