/*
 * main.c - leakscope's entry point: dispatches argv[1] to a subcommand (ls_cli.h).
 */
#include "ls_cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: leakscope COMMAND [ARGS]\n"
            "commands:\n"
            "  run [OPTIONS] [--] PROGRAM [ARGS...]   run PROGRAM under the agent, report leaks\n"
            "  report FILE [--format text|json] [-o OUT] [--show-reachable]\n"
            "              [--suppressions FILE]       render a snapshot file\n"
            "  --version, --help\n"
            "See leakscope(1).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "run") == 0) return ls_cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "report") == 0) return ls_cmd_report(argc - 1, argv + 1);
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
