/*
 * cxx_multiple_inheritance: valgrind's "multipleinheritance" heuristic. C derives from two
 * polymorphic bases A and B; a B* to a C object points at the B subobject, 16 bytes into the
 * 40-byte block (A's vptr, A::a, then B's vptr). valgrind accepts such an interior pointer as
 * reachable when the word it points at and the block's first word are both vtable pointers.
 *  - g_as_b = new C, seen through B*:                         40 bytes still reachable
 *  - g_member = &(new C)->c, a pointer to a data member
 *    (not at a vptr):                                          40 bytes possibly lost
 *  - new C, dropped:                                           40 bytes definitely lost
 */
// EXPECT definitely_lost=40/1 indirectly_lost=0/0 possibly_lost=40/1 still_reachable>=40/1
// EXPECT_FUNC make_c still_reachable=40/1
#include <cstdlib>

#include "lt.h"

struct A {
    virtual ~A() {}
    virtual long fa() { return a; }
    long a = 1;
};
struct B {
    virtual ~B() {}
    virtual long fb() { return b; }
    long b = 2;
};
struct C : A, B {
    long fa() override { return c; }
    long fb() override { return -c; }
    long c = 3;
};
static_assert(sizeof(C) == 40, "layout assumed by the EXPECT line");

B *g_as_b;
long *g_member;

static LT_NOINLINE C *make_c() { return new C; }

static LT_NOINLINE void run()
{
    g_as_b = make_c(); /* implicit upcast: + 16 */
    if ((char *)g_as_b == (char *)static_cast<C *>(g_as_b)) std::abort();
    g_member = &make_c()->c;
    lt_escape(make_c());
}

int main()
{
    run();
    LT_END();
    return 0;
}
