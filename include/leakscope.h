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
int ls_agent_sites_enable(int on) __attribute__((weak));
void ls_agent_ref_register(const void *obj, const char *type, long initial) __attribute__((weak));
void ls_agent_ref_get(const void *obj) __attribute__((weak));
void ls_agent_ref_put(const void *obj) __attribute__((weak));
unsigned long long ls_agent_ref_get_tracked(const void *obj) __attribute__((weak));
void ls_agent_ref_put_tracked(const void *obj, unsigned long long tracker) __attribute__((weak));
void ls_agent_ref_destroy(const void *obj) __attribute__((weak));
long ls_agent_refs_check(const char *snapshot_path) __attribute__((weak));

/* The reference wrappers are always inlined, even at -O0, so the stack the agent records starts
 * in the function that calls them. */
#define LS_REF_INLINE static inline __attribute__((always_inline))

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

/*
 * ls_sites_enable: mode sites (LEAKSCOPE_OPTIONS=mode=sites, run --mode sites) counts the
 * allocations made while counting is on; this turns it on (on != 0) or off, e.g. around the phase
 * of a program worth watching. Blocks allocated while it is off are never counted; blocks counted
 * while it was on are still uncounted when they are freed. Returns the previous state (0 or 1),
 * or -1 without an agent in mode sites.
 */
static inline int ls_sites_enable(int on)
{
    return ls_agent_sites_enable ? ls_agent_sites_enable(on) : -1;
}

/*
 * Reference-count checking. Tell the agent about the references your code takes and drops; it
 * keeps its own (shadow) count per object, with the stack of every get and put, and reports:
 * objects still referenced at exit with the gets that have no put, puts below zero (double
 * puts), gets and puts after the last put, destroys of objects it never saw. Your program keeps
 * its own count as before: these calls only observe. Call them next to your own increment and
 * decrement, typically inside your get/put functions; the agent recognises such wrappers and
 * names their callers. See docs/tutorial-refs.md.
 *
 * An object dies when its count reaches zero, when ls_ref_destroy is called, or when the heap
 * block holding it is freed (even without destroy). A dead object is kept in a bounded
 * quarantine, so a later get or put on it is reported with the stack of the put that killed it.
 */

/* ls_ref_register: obj is a new reference-counted object of the given type (a name used to group
 * the report; the agent keeps its own copy) holding `initial` references (usually 1). Registering
 * an address again starts a new object there. */
LS_REF_INLINE void ls_ref_register(const void *obj, const char *type, long initial)
{
    if (ls_agent_ref_register) ls_agent_ref_register(obj, type, initial);
}

/* ls_ref_get / ls_ref_put: one reference to obj was taken / dropped. */
LS_REF_INLINE void ls_ref_get(const void *obj)
{
    if (ls_agent_ref_get) ls_agent_ref_get(obj);
}

LS_REF_INLINE void ls_ref_put(const void *obj)
{
    if (ls_agent_ref_put) ls_agent_ref_put(obj);
}

/*
 * Trackers, for exact pairing (the kernel's ref_tracker): ls_ref_get_tracked returns a tracker
 * naming this reference (0 when the agent is absent); give it back to ls_ref_put_tracked when
 * the reference is dropped. A tracker put twice is a double put, reported with both stacks; a
 * tracker that never comes back is an unpaired get, exactly. Trackers and plain gets/puts mix.
 */
typedef unsigned long long ls_ref_tracker_t;

LS_REF_INLINE ls_ref_tracker_t ls_ref_get_tracked(const void *obj)
{
    return ls_agent_ref_get_tracked ? ls_agent_ref_get_tracked(obj) : 0;
}

LS_REF_INLINE void ls_ref_put_tracked(const void *obj, ls_ref_tracker_t tracker)
{
    if (ls_agent_ref_put_tracked) ls_agent_ref_put_tracked(obj, tracker);
}

/* ls_ref_destroy: obj is gone (freed, or returned to a pool). Its count should be zero; a
 * destroy of an object the agent never saw is reported with its stack. */
LS_REF_INLINE void ls_ref_destroy(const void *obj)
{
    if (ls_agent_ref_destroy) ls_agent_ref_destroy(obj);
}

/*
 * ls_refs_check: checks the reference counts now, and writes a snapshot with the findings to
 * snapshot_path (NULL: the agent's snapshot_output pattern); `leakscope report FILE` shows them.
 * Returns the number of findings: reference errors recorded so far (double puts, uses after the
 * last put, bad destroys) plus the objects that still hold references now. At a point where the
 * program believes all its objects are released (the end of a test), anything but 0 is a bug.
 * Returns -1 when the agent is absent or the snapshot could not be written.
 */
static inline long ls_refs_check(const char *snapshot_path)
{
    return ls_agent_refs_check ? ls_agent_refs_check(snapshot_path) : -1;
}

#ifdef __cplusplus
}
#endif

#endif
