/*
 * glib_refs.c - a real GObject program for `leakscope run --refs g_object_ref:g_object_unref`.
 *
 * LsItem is a GObject subtype with private data (G_DEFINE_TYPE_WITH_PRIVATE: the private part
 * comes first in the heap block, the instance after it), an int property with notify, and a
 * "poked" signal carrying another item. Many items are created and released correctly through
 * the ways GLib itself takes and drops references: property notification, signal emission with
 * an object argument, GValue, GList and GPtrArray freed with g_object_unref, weak references,
 * g_set_object/g_clear_object, a GHashTable owning its values, and two threads sharing items.
 * Most of those refs and unrefs happen inside libgobject, with direct calls.
 *
 * One bug, on purpose: cache_lookup() returns a new reference, and remember_last() forgets to
 * drop it. It is called for LS_LEAKED distinct items, which therefore outlive the cache with
 * exactly one reference each. The program checks that with GObject's own count and prints
 * "leaked N" and the G_SLICE value it saw (the test checks leakscope run set it).
 *
 * Usage: glib_refs [ROUNDS]   (default 40; each round creates 12 items)
 */
#include <glib-object.h>
#include <stdio.h>
#include <stdlib.h>

#define LS_LEAKED 3

#define LS_TYPE_ITEM (ls_item_get_type())
G_DECLARE_FINAL_TYPE(LsItem, ls_item, LS, ITEM, GObject)

struct _LsItem {
    GObject parent;
};

typedef struct {
    char *name;
    int value;
    GList *peers; /* items poked into this one: one reference each */
} LsItemPrivate;

G_DEFINE_TYPE_WITH_PRIVATE(LsItem, ls_item, G_TYPE_OBJECT)

enum { PROP_0, PROP_VALUE, N_PROPS };
static GParamSpec *props[N_PROPS];
enum { SIG_POKED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void ls_item_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *ps)
{
    LsItemPrivate *p = ls_item_get_instance_private(LS_ITEM(obj));
    if (id == PROP_VALUE)
        p->value = g_value_get_int(v);
    else
        G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
}

static void ls_item_get_property(GObject *obj, guint id, GValue *v, GParamSpec *ps)
{
    LsItemPrivate *p = ls_item_get_instance_private(LS_ITEM(obj));
    if (id == PROP_VALUE)
        g_value_set_int(v, p->value);
    else
        G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
}

/* The class handler of "poked": keep a reference to the other item. */
static void ls_item_poked(LsItem *self, LsItem *other)
{
    LsItemPrivate *p = ls_item_get_instance_private(self);
    p->peers = g_list_prepend(p->peers, g_object_ref(other));
}

static void ls_item_dispose(GObject *obj)
{
    LsItemPrivate *p = ls_item_get_instance_private(LS_ITEM(obj));
    g_list_free_full(g_steal_pointer(&p->peers), g_object_unref);
    G_OBJECT_CLASS(ls_item_parent_class)->dispose(obj);
}

static void ls_item_finalize(GObject *obj)
{
    LsItemPrivate *p = ls_item_get_instance_private(LS_ITEM(obj));
    g_free(p->name);
    G_OBJECT_CLASS(ls_item_parent_class)->finalize(obj);
}

static void ls_item_class_init(LsItemClass *klass)
{
    GObjectClass *oc = G_OBJECT_CLASS(klass);
    oc->set_property = ls_item_set_property;
    oc->get_property = ls_item_get_property;
    oc->dispose = ls_item_dispose;
    oc->finalize = ls_item_finalize;
    props[PROP_VALUE] = g_param_spec_int("value", "value", "a number", 0, 1000000, 0,
                                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY);
    g_object_class_install_properties(oc, N_PROPS, props);
    signals[SIG_POKED] = g_signal_new_class_handler("poked", LS_TYPE_ITEM, G_SIGNAL_RUN_LAST,
                                                    G_CALLBACK(ls_item_poked), NULL, NULL, NULL,
                                                    G_TYPE_NONE, 1, LS_TYPE_ITEM);
}

static void ls_item_init(LsItem *self)
{
    (void)self;
}

static LsItem *ls_item_new(const char *name, int value)
{
    LsItem *it = g_object_new(LS_TYPE_ITEM, "value", value, NULL);
    LsItemPrivate *p = ls_item_get_instance_private(it);
    p->name = g_strdup(name);
    return it;
}

static int item_value(LsItem *it)
{
    return ((LsItemPrivate *)ls_item_get_instance_private(it))->value;
}

static void set_value(LsItem *it, int v)
{
    LsItemPrivate *p = ls_item_get_instance_private(it);
    if (p->value == v) return;
    p->value = v;
    g_object_notify_by_pspec(G_OBJECT(it), props[PROP_VALUE]);
}

/* ---- the released paths ------------------------------------------------------------------- */
static int notified;

static void on_notify(GObject *obj, GParamSpec *ps, gpointer data)
{
    (void)ps;
    (void)data;
    notified += item_value(LS_ITEM(obj)) > 0;
}

static void weak_gone(gpointer data, GObject *where)
{
    (void)where;
    (*(int *)data)++;
}

static int round_released(int r)
{
    int sum = 0, gone = 0;
    char name[32];
    /* Plain create and unref; a property set through g_object_set (GLib refs the object around
     * the notification) and a handler on notify. */
    LsItem *a = ls_item_new("a", r);
    g_signal_connect(a, "notify::value", G_CALLBACK(on_notify), NULL);
    g_object_set(a, "value", r + 1, NULL);
    set_value(a, r + 2);
    LsItem *b = ls_item_new("b", r);
    /* A signal carrying an object: emission refs it, the handler keeps it in a's peers. */
    g_signal_emit(a, signals[SIG_POKED], 0, b);
    /* GValue of an object. */
    GValue v = G_VALUE_INIT;
    g_value_init(&v, LS_TYPE_ITEM);
    g_value_set_object(&v, b);
    sum += item_value(g_value_get_object(&v));
    g_value_unset(&v);
    /* A list and an array owning references, freed with g_object_unref. */
    GList *list = NULL;
    GPtrArray *arr = g_ptr_array_new_with_free_func(g_object_unref);
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "l%d", i);
        LsItem *c = ls_item_new(name, i);
        list = g_list_prepend(list, g_object_ref(c));
        g_ptr_array_add(arr, c);
    }
    g_list_free_full(list, g_object_unref);
    g_ptr_array_unref(arr);
    /* A weak reference and a weak pointer; g_set_object and g_clear_object. */
    LsItem *w = ls_item_new("w", r), *slot = NULL, *wp = w;
    g_object_weak_ref(G_OBJECT(w), weak_gone, &gone);
    g_object_add_weak_pointer(G_OBJECT(w), (gpointer *)&wp);
    g_set_object(&slot, w);
    g_object_unref(w);
    g_clear_object(&slot);
    sum += gone + (wp == NULL);
    /* g_object_get of a GObject-valued property would ref; a GValue copy does too. */
    GValue v1 = G_VALUE_INIT, v2 = G_VALUE_INIT;
    g_value_init(&v1, G_TYPE_OBJECT);
    g_value_init(&v2, G_TYPE_OBJECT);
    g_value_take_object(&v1, ls_item_new("v", r));
    g_value_copy(&v1, &v2);
    g_value_unset(&v1);
    g_value_unset(&v2);
    sum += item_value(b);
    g_object_unref(b);
    g_object_unref(a); /* its dispose drops its reference to b: b dies here */
    return sum;
}

/* ---- the cache and its bug ---------------------------------------------------------------- */
static unsigned cache_hits;

/* Returns a new reference to the item under key (the caller must drop it), or NULL. Not
 * `return g_object_ref(it)`: that is a tail call at -O2, and cache_lookup's frame would be gone
 * from the stack the wrapped g_object_ref sees (its caller would take the blame). */
__attribute__((noinline)) static LsItem *cache_lookup(GHashTable *cache, const char *key)
{
    LsItem *it = g_hash_table_lookup(cache, key);
    if (it) {
        g_object_ref(it);
        cache_hits++;
    }
    return it;
}

/* Correct caller. */
__attribute__((noinline)) static int cache_print(GHashTable *cache, const char *key)
{
    LsItem *it = cache_lookup(cache, key);
    if (!it) return 0;
    int v = item_value(it);
    g_object_unref(it);
    return v;
}

static LsItem *last_seen; /* not a reference: only compared with */

/* The bug: keeps the item's value and forgets the reference cache_lookup handed out. */
__attribute__((noinline)) static int remember_last(GHashTable *cache, const char *key)
{
    LsItem *it = cache_lookup(cache, key);
    if (!it) return 0;
    last_seen = it;
    return item_value(it);
}

/* ---- two threads sharing items ------------------------------------------------------------ */
static gpointer thread_main(gpointer data)
{
    LsItem **items = data;
    int s = 0;
    for (int k = 0; k < 2000; k++) {
        LsItem *it = g_object_ref(items[k % 8]);
        s += item_value(it);
        g_object_unref(it);
    }
    return GINT_TO_POINTER(s);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    const char *slice = getenv("G_SLICE");
    printf("G_SLICE=%s\n", slice ? slice : "(unset)");
    int sum = 0;
    for (int r = 0; r < rounds; r++) sum += round_released(r);

    GHashTable *cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_object_unref);
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        g_hash_table_insert(cache, g_strdup(key), ls_item_new(key, i)); /* the cache's reference */
    }
    for (int pass = 0; pass < 5; pass++) {
        for (int i = 0; i < 10; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            sum += cache_print(cache, key);
        }
    }
    LsItem *watch[LS_LEAKED];
    for (int i = 0; i < LS_LEAKED; i++) {
        snprintf(key, sizeof(key), "k%d", 2 * i + 1);
        sum += remember_last(cache, key);
        watch[i] = last_seen;
    }

    LsItem *shared[8];
    for (int i = 0; i < 8; i++) shared[i] = ls_item_new("shared", i);
    GThread *t1 = g_thread_new("t1", thread_main, shared);
    GThread *t2 = g_thread_new("t2", thread_main, shared);
    sum += GPOINTER_TO_INT(g_thread_join(t1)) + GPOINTER_TO_INT(g_thread_join(t2));
    for (int i = 0; i < 8; i++) g_object_unref(shared[i]);

    g_hash_table_destroy(cache); /* drops the cache's references: the watched items survive */
    int leaked = 0;
    for (int i = 0; i < LS_LEAKED; i++) leaked += G_OBJECT(watch[i])->ref_count == 1;
    printf("leaked %d\nnotified %d\nsum %d\n", leaked, notified, sum);
    return leaked == LS_LEAKED ? 0 : 1;
}
