// Telling valgrind's memcheck what io_uring wrote. memcheck sees the syscalls a program makes,
// not the reads the kernel completes later on its behalf, so a buffer filled by a ring read
// would look uninitialised on every use. Built in only where the valgrind headers are (the
// developer machine, tools/dev installs them); elsewhere it is nothing. Outside valgrind the
// client request is a few no-op instructions.
#pragma once

#include <cstddef>

#if ATLAS_HAVE_MEMCHECK
#include <valgrind/memcheck.h>
#endif

namespace atlas::event {

// Whether this process runs under valgrind (see ring::run_once).
inline bool under_valgrind() {
#if ATLAS_HAVE_MEMCHECK
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

// The kernel wrote `len` bytes at `p` (a ring read completed with res = len).
inline void kernel_wrote(const void *p, long len) {
#if ATLAS_HAVE_MEMCHECK
    if (len > 0) VALGRIND_MAKE_MEM_DEFINED(p, static_cast<size_t>(len));
#else
    (void)p;
    (void)len;
#endif
}

}  // namespace atlas::event
