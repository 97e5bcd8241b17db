/*
 * explain_cli.h - `cost-extender explain`: flags, inputs, output.
 */
#ifndef CE_EXPLAIN_CLI_H
#define CE_EXPLAIN_CLI_H

/* argv[0] is "explain". Returns the exit code (see cli.h). */
int explain_cli_main(int argc, char **argv);

#endif
