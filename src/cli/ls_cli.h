/*
 * ls_cli.h - the leakscope command's subcommands. Each takes argc/argv with argv[0] naming the
 * subcommand and returns the process exit status.
 */
#ifndef LS_CLI_H
#define LS_CLI_H

/* leakscope report FILE [--format text|json|pprof|collapsed] [-o OUT] [--show-reachable]
 * [--suppressions FILE] [--sample-index VIEW] [--top N]
 * 0 = report written, 1 = unreadable or corrupt input / output failure, 2 = usage error. */
int ls_cmd_report(int argc, char **argv);

/* leakscope run [OPTIONS] [--] PROGRAM [ARGS...]: the program's exit status, or
 * --error-exitcode's when it leaked; 2 = usage error, 127 = the program could not be run. */
int ls_cmd_run(int argc, char **argv);

/* Live inspection (ls_cmd_live.c): talk to running agents over the control channel (ls_ctl.h).
 * leakscope snapshot PID [-o FILE] [--leak-check]; leakscope mark PID LABEL; leakscope ps.
 * 0 = done, 1 = no such agent / the agent reported an error, 2 = usage error. */
int ls_cmd_snapshot(int argc, char **argv);
int ls_cmd_mark(int argc, char **argv);
int ls_cmd_ps(int argc, char **argv);

/* leakscope watch PID [--interval S] [--count N] [-o DIR] [--top N] [--site-skip GLOB]
 * (ls_cmd_watch.c, loop in ls_watch.c): periodic snapshots kept as files, with a refreshing
 * table of the top sites and their growth. 0 = at least one snapshot taken, 1 = none, 2 usage. */
int ls_cmd_watch(int argc, char **argv);

/* leakscope suspects DIR|SNAPSHOT... [--format text|json] [--top N] [--min-growth BYTES]
 * [--site-skip GLOB] [-o OUT] (ls_cmd_suspects.c, method in ls_series.c): sites whose live bytes
 * keep growing across snapshots and do not fall back. 0 = analysed (suspects or not), 1 = bad
 * input (or fewer than 3 snapshots), 2 usage. */
int ls_cmd_suspects(int argc, char **argv);

/* leakscope diff OLD NEW [--by site|stack] [--format text|json|pprof] [--top N] [-o OUT]
 * [--site-skip GLOB] [--sample-index VIEW] (ls_cmd_diff.c): per site and per stack, NEW minus
 * OLD. 0 / 1 / 2. */
int ls_cmd_diff(int argc, char **argv);

/* leakscope sites SNAPSHOT [--format text|json] [--sort bytes|calls|allocs|alloc-bytes]
 * [--top N] [--site-frames N] [-o OUT] (ls_cmd_sites.c, view in ls_sites.h): live bytes and
 * blocks per allocation site, /proc/allocinfo's shape. 0 / 1 / 2. */
int ls_cmd_sites(int argc, char **argv);

#endif
