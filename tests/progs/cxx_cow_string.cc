/*
 * cxx_cow_string: valgrind's "stdstring" heuristic, for the pre-C++11 copy-on-write std::string
 * (-D_GLIBCXX_USE_CXX11_ABI=0). Such a string object is one pointer to the characters, which
 * live 24 bytes into a heap "rep" block laid out as length, capacity, refcount, chars, NUL.
 *  - g_str = new std::string(50, 'z'): the 8-byte string object is reachable through a start
 *    pointer, its 24 + 50 + 1 = 75-byte rep through the interior pointer, accepted by the
 *    heuristic (capacity 50, 24 + 50 + 1 == 75, length <= capacity):   83 bytes in 2 blocks
 *  - new std::string(30, 'q'), dropped: the object (8) is definitely lost, its 55-byte rep
 *    indirectly (valgrind's clique pass follows interior pointers too).
 */
// CFLAGS -O0 -g -D_GLIBCXX_USE_CXX11_ABI=0
// EXPECT definitely_lost=8/1 indirectly_lost=55/1 possibly_lost=0/0 still_reachable>=83/2
// EXPECT_FUNC run still_reachable=83/2
#include <string>

#include "lt.h"

std::string *g_str;

static LT_NOINLINE void run()
{
    g_str = new std::string(50, 'z');
    lt_escape(new std::string(30, 'q'));
}

int main()
{
    run();
    LT_END();
    return 0;
}
