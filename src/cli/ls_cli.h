/*
 * ls_cli.h - the leakscope command's subcommands. Each takes argc/argv with argv[0] naming the
 * subcommand and returns the process exit status.
 */
#ifndef LS_CLI_H
#define LS_CLI_H

/* leakscope report FILE [--format text|json] [-o OUT] [--show-reachable] [--suppressions FILE]
 * 0 = report written, 1 = unreadable or corrupt input / output failure, 2 = usage error. */
int ls_cmd_report(int argc, char **argv);

/* leakscope run [OPTIONS] [--] PROGRAM [ARGS...]: the program's exit status, or
 * --error-exitcode's when it leaked; 2 = usage error, 127 = the program could not be run. */
int ls_cmd_run(int argc, char **argv);

#endif
