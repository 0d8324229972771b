/*
 * main.c - leakscope's entry point: dispatches argv[1] to a subcommand (ls_cli.h).
 */
#include "ls_cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: leakscope COMMAND [ARGS]\n"
        "commands:\n"
        "  run [OPTIONS] [--] PROGRAM [ARGS...]   run PROGRAM under the agent, report leaks\n"
        "  report FILE [--format text|json|pprof|collapsed] [-o OUT] [--show-reachable]\n"
        "              [--suppressions FILE] [--born-after MARK|TIME] [--born-before MARK|TIME]\n"
        "              [--sample-index VIEW] [--top N]\n"
        "                                          render a snapshot file or sample profile\n"
        "  snapshot PID [-o FILE] [--leak-check]  snapshot a running process\n"
        "  mark PID LABEL                         place a named marker in a running process\n"
        "  ps                                     list processes with a live agent\n"
        "  watch PID [--interval S] [--count N] [-o DIR]\n"
        "                                         snapshots over time, with a growth table\n"
        "  suspects DIR|SNAPSHOT...               sites whose live bytes keep growing\n"
        "  diff OLD NEW                           what grew and shrank between two snapshots\n"
        "  sites SNAPSHOT [--format text|json] [--sort bytes|calls|allocs|alloc-bytes]\n"
        "                [--top N] [-o OUT]       live bytes and blocks per allocation site\n"
        "                                         (/proc/allocinfo's shape)\n"
        "  --version, --help\n"
        "See leakscope(1).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", ls_cmd_run},           {"report", ls_cmd_report}, {"snapshot", ls_cmd_snapshot},
        {"mark", ls_cmd_mark},         {"ps", ls_cmd_ps},         {"watch", ls_cmd_watch},
        {"suspects", ls_cmd_suspects}, {"diff", ls_cmd_diff},     {"sites", ls_cmd_sites},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("leakscope %s\n", LS_VERSION);
        return 0;
    }
    fprintf(stderr, "leakscope: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
