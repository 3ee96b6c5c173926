// Heap allocations made by this test program so far. Link alloc_counter.cc into a unit
// test executable to count them (it replaces the global operator new and delete).
#pragma once

#include <cstdint>

namespace atlas::test {

uint64_t allocations();

}  // namespace atlas::test
