/*
 * sim_cli.h - `cost-extender simulate`: flags, inputs, progress, output.
 */
#ifndef CE_SIM_CLI_H
#define CE_SIM_CLI_H

/* argv[0] is "simulate". Returns the exit code (see cli.h). */
int sim_cli_main(int argc, char **argv);

#endif
