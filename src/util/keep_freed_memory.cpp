#include "lpsim/util/keep_freed_memory.hpp"

// <malloc.h> first: it is what defines __GLIBC__ here (tested before any libc header, the test was false and this
// function did nothing; test_keep_freed_memory.cpp now counts the page faults).
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif

namespace lpsim {

void keep_freed_memory() {
#if defined(__GLIBC__)
  // No block is mapped on its own (glibc caps the mmap threshold at 32 MiB, below an LM head's logits), and the
  // heap top is never handed back (-1: the largest threshold). A 400 MB vector freed and allocated again then
  // faults no page the second time (100k faults each time without).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
#endif
}

}  // namespace lpsim
