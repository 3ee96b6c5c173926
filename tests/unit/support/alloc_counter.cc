// Replaces the global operator new/delete pair (both on malloc/free), which a program may
// do in one translation unit: this one. It only counts, so it is harmless for the other
// tests of the executable. GCC cannot see that the replaced new and delete match and warns
// at every inlined pair in this file.
#include "alloc_counter.hh"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<uint64_t> g_allocs{0};
}

uint64_t atlas::test::allocations() { return g_allocs.load(); }

void *operator new(std::size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void *operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }
void operator delete[](void *p, std::size_t) noexcept { std::free(p); }
