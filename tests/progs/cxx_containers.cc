/*
 * cxx_containers: standard containers.
 *  - a global std::string (100 chars) and a global std::vector<int>(50) by value: destroyed by
 *    their static destructors before the leak check, so not reported at all (the check must run
 *    after the program's static destructors and atexit handlers)
 *  - a global pointer to a heap std::vector<std::string> of 3 strings of 40 chars: vector object
 *    24 + element buffer 3 * 32 + 3 string buffers of 41:           243 bytes in 5 blocks reachable
 *  - new std::vector<int>(10), dropped: object 24 definite, buffer 40 indirect
 *  - new std::string(64 chars), dropped: object 32 definite, buffer 65 indirect
 *  - new std::map<int, int> with 3 entries, dropped: object 48 definite, 3 nodes of 40 indirect
 * definitely lost 104/3, indirectly lost 225/5.
 */
// EXPECT definitely_lost=104/3 indirectly_lost=225/5 possibly_lost=0/0 still_reachable>=243/5
// EXPECT_FUNC drop_containers definitely_lost=104/3
// EXPECT_FUNC make_names still_reachable=243/5
#include <map>
#include <string>
#include <vector>

#include "lt.h"

std::string g_str(100, 'x');
std::vector<int> g_vec(50, 7);
std::vector<std::string> *g_names;

static LT_NOINLINE std::vector<std::string> *make_names()
{
    auto *v = new std::vector<std::string>;
    v->reserve(3);
    for (char c : {'a', 'b', 'c'}) v->emplace_back(40, c);
    return v;
}

static LT_NOINLINE void drop_containers()
{
    auto *v = new std::vector<int>(10, 1);
    lt_escape(v);
    auto *s = new std::string(64, 'y');
    lt_escape(s);
    auto *m = new std::map<int, int>;
    for (int i = 0; i < 3; i++) (*m)[i] = i * i;
    lt_escape(m);
}

static LT_NOINLINE void run()
{
    g_names = make_names();
    drop_containers();
    lt_escape(&g_str);
    lt_escape(&g_vec);
}

int main()
{
    run();
    LT_END();
    return 0;
}
