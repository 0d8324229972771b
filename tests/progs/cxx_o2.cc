/*
 * cxx_o2: C++ built with -O2 -fomit-frame-pointer: stacks through virtual calls, a namespace, a
 * function template, std::function and an exception handler must unwind (DWARF CFI) and
 * symbolize (demangled names such as geo::make_circle(double) match EXPECT_FUNC make_circle).
 *  - geo::make_circle(2.0), dropped:                        16 (vptr + double)
 *  - its clone() through a virtual call, dropped:            16
 *  - make_array<long>(5) called through a std::function:     40
 *  - a block allocated in a catch handler after a throw:     24
 * definitely lost 96 bytes in 4 blocks. The exception object itself is freed when the handler
 * ends.
 */
// CFLAGS -O2 -g -fomit-frame-pointer
// EXPECT definitely_lost=96/4 indirectly_lost=0/0 possibly_lost=0/0 still_reachable>=0/0
// EXPECT_FUNC make_circle definitely_lost=16/1
// EXPECT_FUNC clone definitely_lost=16/1
// EXPECT_FUNC make_array definitely_lost=40/1
// EXPECT_FUNC handle_failure definitely_lost=24/1
// EXPECT_FUNC run definitely_lost=96/4
#include <cstddef>
#include <functional>
#include <stdexcept>

#include "lt.h"

namespace geo {
struct Shape {
    virtual ~Shape() {}
    virtual Shape *clone() const = 0;
};
struct Circle : Shape {
    double r;
    explicit Circle(double rr) : r(rr) {}
    LT_NOINLINE Shape *clone() const override
    {
        Shape *s = new Circle(*this);
        lt_escape(s);
        return s;
    }
};
LT_NOINLINE Shape *make_circle(double r)
{
    Shape *s = new Circle(r);
    lt_escape(s);
    return s;
}
} // namespace geo

template <typename T> LT_NOINLINE T *make_array(std::size_t n)
{
    T *a = new T[n]();
    lt_escape(a);
    return a;
}

LT_NOINLINE void fail(int x)
{
    if (x > 0) throw std::runtime_error("deliberate");
}

LT_NOINLINE void handle_failure()
{
    long *p = new long[3]();
    lt_escape(p);
}

LT_NOINLINE void run(int argc)
{
    geo::Shape *volatile s = geo::make_circle(2.0);
    lt_escape(s->clone());
    s = nullptr;
    std::function<long *(std::size_t)> f = make_array<long>;
    lt_escape(f(5));
    try {
        fail(argc);
    } catch (const std::exception &) {
        handle_failure();
    }
}

int main(int argc, char **)
{
    run(argc);
    LT_END();
    return 0;
}
