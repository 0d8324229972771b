/*
 * glib_dlopen.c - GObject loaded late, with threads running: `run --refs` must wrap
 * g_object_ref/g_object_unref when the dlopen brings them (not before main), with the other
 * threads parked while the entries are patched, and find them although the library is loaded
 * RTLD_LOCAL (dlsym(RTLD_DEFAULT) does not see it; Python loads its extensions that way).
 *
 * Two workers spin (malloc/free) from before the dlopen; once main publishes the objects they
 * take and drop references to them for a while. main then leaks LS_LEAKED objects through
 * forget_ref(), which takes a reference and never drops it. Objects carry qdata holding a
 * reference to another object, released by libgobject itself (g_object_unref called from
 * inside it) when the holder dies.
 *
 * Not linked with GObject: every function comes from dlsym on the dlopen handle.
 */
#include <dlfcn.h>
#include <glib-object.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define LS_LEAKED 2
#define LS_SHARED 8

static gpointer (*p_object_new)(GType, const gchar *, ...);
static gpointer (*p_ref)(gpointer);
static void (*p_unref)(gpointer);
static void (*p_set_data_full)(GObject *, const gchar *, gpointer, GDestroyNotify);

static GObject *shared[LS_SHARED];
static atomic_int phase; /* 0: spin, 1: objects published, 2: stop */

static void *worker(void *arg)
{
    long n = 0;
    (void)arg;
    while (atomic_load(&phase) == 0) { /* running (and allocating) across the dlopen */
        void *p = malloc(32);
        free(p);
        n++;
    }
    for (int k = 0; atomic_load(&phase) == 1 && k < 20000; k++) {
        gpointer o = p_ref(shared[k % LS_SHARED]);
        p_unref(o);
    }
    return (void *)n;
}

__attribute__((noinline)) static GObject *forget_ref(GObject *o)
{
    p_ref(o); /* the bug: no unref anywhere */
    return o;
}

int main(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker, NULL)) return 2;
    void *h = dlopen("libgobject-2.0.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    *(void **)&p_object_new = dlsym(h, "g_object_new");
    *(void **)&p_ref = dlsym(h, "g_object_ref");
    *(void **)&p_unref = dlsym(h, "g_object_unref");
    *(void **)&p_set_data_full = dlsym(h, "g_object_set_data_full");
    if (!p_object_new || !p_ref || !p_unref || !p_set_data_full) return 2;

    for (int i = 0; i < LS_SHARED; i++) {
        shared[i] = p_object_new(G_TYPE_OBJECT, NULL);
        GObject *peer = p_object_new(G_TYPE_OBJECT, NULL);
        p_set_data_full(shared[i], "peer", peer, p_unref); /* the holder's reference */
    }
    atomic_store(&phase, 1);
    for (int k = 0; k < 20000; k++) {
        gpointer o = p_ref(shared[k % LS_SHARED]);
        p_unref(o);
    }
    atomic_store(&phase, 2);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < LS_SHARED; i++) p_unref(shared[i]); /* and each one's peer with it */

    static GObject *leaked[LS_LEAKED];
    for (int i = 0; i < LS_LEAKED; i++) leaked[i] = forget_ref(p_object_new(G_TYPE_OBJECT, NULL));
    for (int i = 0; i < LS_LEAKED; i++) p_unref(leaked[i]); /* the creator's reference only */
    printf("leaked %d\n", LS_LEAKED);
    return 0;
}
