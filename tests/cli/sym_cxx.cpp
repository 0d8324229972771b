// sym_cxx.cpp - a C++ caller with a namespaced template member, built with -O0 -g, so the
// symbolizer tests can check demangled names ("ns::Widget<int>::make(int, unsigned long*)").
#include "sym_target.h"

namespace ns
{
template <typename T> struct Widget {
    __attribute__((noinline)) static void make(T v, uintptr_t *out)
    {
        (void)v;
        sym_capture(out); // @cxx-call
    }
};
} // namespace ns

extern "C" void sym_cxx_run(uintptr_t *out)
{
    ns::Widget<int>::make(1, out);
}
