/*
 * eval.h - the tally-eval subcommands. Each prints one JSON object on stdout
 * and returns a process exit status (0 ok, 1 bad input, 2 usage).
 */
#ifndef TALLY_EVAL_EVAL_H
#define TALLY_EVAL_EVAL_H

int eval_estimates(int argc, char **argv);
int eval_units(int argc, char **argv);
int eval_placement(int argc, char **argv);

#endif
