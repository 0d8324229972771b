/*
 * leakscope.h - the public API of the leakscope agent.
 *
 * Every function here is declared weak: a program that uses this header links and runs without
 * libleakscope.so, and each call then costs one test of a symbol address against NULL. When the
 * agent is preloaded (leakscope run, or LD_PRELOAD=libleakscope.so), the calls reach it.
 * Link nothing; include this header. pkg-config name: leakscope.
 */
#ifndef LEAKSCOPE_H
#define LEAKSCOPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LS_API_VERSION 1

/* Agent entry points (weak). Call through the ls_* inline wrappers below. */
int ls_agent_active(void) __attribute__((weak));
long ls_agent_leak_check(const char *snapshot_path) __attribute__((weak));
void ls_agent_ignore(const void *ptr) __attribute__((weak));
long ls_agent_mark(const char *label) __attribute__((weak));
int ls_agent_snapshot_write(const char *path) __attribute__((weak));

/*
 * ls_active: nonzero when the agent is loaded and tracking allocations in this process.
 */
static inline int ls_active(void)
{
    return ls_agent_active ? ls_agent_active() : 0;
}

/*
 * ls_leak_check: runs a full leak check now (stops the other threads while it scans) and writes
 * the result as a snapshot to snapshot_path (NULL: the agent's configured output with a
 * sequence number). Returns the number of definitely + indirectly lost bytes found, or -1 when
 * the agent is absent or the check could not run. The program continues afterwards.
 */
static inline long ls_leak_check(const char *snapshot_path)
{
    return ls_agent_leak_check ? ls_agent_leak_check(snapshot_path) : -1;
}

/*
 * ls_ignore: marks the live heap block at ptr (its start address) as deliberately kept: it is
 * reported as still reachable whatever points to it, like LeakSanitizer's __lsan_ignore_object.
 */
static inline void ls_ignore(const void *ptr)
{
    if (ls_agent_ignore) ls_agent_ignore(ptr);
}

/*
 * ls_mark: places a named marker now (like `leakscope mark PID LABEL`). Snapshots list the
 * markers, and `leakscope report --born-after LABEL --born-before LABEL2` shows what was
 * allocated between two of them and is still alive. Labels are cut at 120 bytes. Returns the
 * marker's number (1, 2, ...), or -1 when the agent is absent or its marker table is full.
 */
static inline long ls_mark(const char *label)
{
    return ls_agent_mark ? ls_agent_mark(label) : -1;
}

/*
 * ls_snapshot_write: writes a snapshot of the live blocks now (like `leakscope snapshot PID`),
 * to path, or with path NULL to the agent's snapshot_output pattern (leakscope.%p.%n.lsnap).
 * Other threads are parked only while the blocks are copied. Returns 0, or -1 when the agent is
 * absent or the snapshot could not be written (the reason is on stderr).
 */
static inline int ls_snapshot_write(const char *path)
{
    return ls_agent_snapshot_write ? ls_agent_snapshot_write(path) : -1;
}

#ifdef __cplusplus
}
#endif

#endif
