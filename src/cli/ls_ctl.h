/*
 * ls_ctl.h - the CLI's side of the control channel: find live agents and talk to them.
 *
 * An agent listens on a Unix stream socket DIR/PID.sock, DIR being $XDG_RUNTIME_DIR/leakscope
 * when the agent's environment has XDG_RUNTIME_DIR, else /tmp/leakscope-UID (owner-only, checked
 * for ownership on both sides). The protocol is one request line per connection and one reply
 * line (both at most LS_CTL_LINE_MAX bytes, '\n'-terminated):
 *   info                         -> ok pid=N mode=M blocks=N bytes=N uptime_ns=N markers=N
 *                                   snapshots=N protocol=1 exe=PATH
 *   snapshot ABS_PATH [check]    -> ok PATH pause_ns=N blocks=N   (check: run the leak check too)
 *   mark LABEL                   -> ok seq=N time_ns=N
 * and "error MESSAGE" on any failure. See docs/DESIGN.md, "Control channel".
 */
#ifndef LS_CTL_H
#define LS_CTL_H

#include <stddef.h>
#include <sys/types.h>

#define LS_CTL_LINE_MAX 4096

/* The candidate socket directories, most specific first: $LEAKSCOPE_CONTROL_DIR (for agents
 * started with control_dir=), $XDG_RUNTIME_DIR/leakscope, /run/user/UID/leakscope,
 * /tmp/leakscope-UID. Returns how many (<= 4). */
size_t ls_ctl_dirs(char dirs[][512], size_t max);

/* Connects to pid's agent, sends request (no newline needed), reads the reply. Returns 0 with the
 * text after "ok " in reply, or -1 with a message naming the problem in err (no agent for pid,
 * refused, timeout, or the agent's "error ..." text). timeout_ms bounds the whole exchange. */
int ls_ctl_request(pid_t pid, const char *request, char *reply, size_t replylen, int timeout_ms,
                   char *err, size_t errlen);

/* Asks pid for a snapshot written to path (made absolute here). Returns 0 or -1 with err. */
int ls_ctl_snapshot(pid_t pid, const char *path, int leak_check, char *err, size_t errlen);

/* Live agents: calls fn for each pid whose socket accepts a connection, with its "info" reply, or
 * NULL when it did not answer within 3 s (busy, or wedged); stale sockets (nobody listening) are
 * removed on the way. Returns the number found. */
typedef void (*ls_ctl_agent_fn)(pid_t pid, const char *info_reply, void *ctx);
size_t ls_ctl_list(ls_ctl_agent_fn fn, void *ctx);

#endif
