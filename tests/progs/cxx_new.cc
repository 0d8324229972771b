/*
 * cxx_new: operator new / new[] and valgrind's "newarray" heuristic.
 * Widget has a user-provided destructor, so new Widget[n] allocates an 8-byte element-count
 * cookie in front of the array and returns block + 8 (an interior pointer):
 *  - g_widgets = new Widget[10]: block of 8 + 10 * 12 = 128 bytes, word0 = 10, 120 % 10 == 0:
 *    the newarray heuristic makes it still reachable (it would be possibly lost without it)
 *  - g_ints = new int[10]: no cookie, start pointer:                      40 still reachable
 *  - g_empty = new Widget[0]: an 8-byte block holding just the cookie (0), and the returned
 *    pointer is block + 8, one past its end: valgrind counts it definitely lost although a global
 *    holds the pointer (the case is spelled out in memcheck's heuristic_reachedness)
 *  - new Node (16 bytes) whose next points to a second Node, dropped:     16/1 definite + 16/1
 *    indirect
 *  - new Widget[5] dropped: 8 + 60 = 68 bytes                             definitely lost
 *  - new int[7] dropped: 28 bytes                                         definitely lost
 * definitely lost: 8 + 16 + 68 + 28 = 120 bytes in 4 blocks; still reachable >= 168/2 (natively
 * libstdc++'s 72704-byte emergency exception pool is reachable too; valgrind frees it at exit
 * through __gnu_cxx::__freeres).
 */
// EXPECT definitely_lost=120/4 indirectly_lost=16/1 possibly_lost=0/0 still_reachable>=168/2
// EXPECT_FUNC make_widgets still_reachable=128/1
// EXPECT_FUNC drop_news definitely_lost=112/3
// EXPECT_FUNC make_widgets definitely_lost=76/2
#include <cstdlib>

#include "lt.h"

static int g_live_widgets;

struct Widget {
    int v[3];
    Widget() : v{1, 2, 3} { ++g_live_widgets; }
    ~Widget();
};
LT_NOINLINE Widget::~Widget() { --g_live_widgets; }

struct Node {
    Node *next;
    long key;
    explicit Node(Node *n) : next(n), key(42) {}
    ~Node();
};
LT_NOINLINE Node::~Node() { key = 0; }

Widget *g_widgets, *g_empty;
int *g_ints;

static LT_NOINLINE Widget *make_widgets(int n) { return new Widget[n]; }

static LT_NOINLINE void drop_news()
{
    Node *n = new Node(new Node(nullptr));
    lt_escape(n);
    Widget *w = make_widgets(5);
    lt_escape(w);
    int *ints = new int[7]();
    lt_escape(ints);
}

static LT_NOINLINE void run()
{
    g_widgets = make_widgets(10);
    g_ints = new int[10]();
    g_empty = make_widgets(0);
    drop_news();
}

int main()
{
    run();
    LT_END();
    return 0;
}
