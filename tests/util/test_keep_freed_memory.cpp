// keep_freed_memory: a large block freed and allocated again comes back without page faults (the kernel's minor
// faults, counted by getrusage), where glibc's defaults give it back to the kernel on free and fault it in again.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstddef>
#include <vector>

#include "lpsim/util/keep_freed_memory.hpp"

namespace lpsim {
namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Faults taken by allocating, writing and freeing `bytes`.
long faults_of_one_use(std::size_t bytes) {
  const long before = minor_faults();
  {
    std::vector<char> block(bytes, 1);
    EXPECT_EQ(block[bytes / 2], 1);
  }
  return minor_faults() - before;
}

TEST(KeepFreedMemory, ALargeBlockComesBackWithoutPageFaults) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator replaces glibc's (mallopt has nothing to set)";
#elif defined(__GLIBC__)
  constexpr std::size_t bytes = std::size_t(256) << 20;  // over glibc's largest mmap threshold (32 MiB)
  constexpr long pages = long(bytes / 4096);
  EXPECT_GT(faults_of_one_use(bytes), pages / 2);  // glibc's defaults: mapped and unmapped, every page faulted in
  keep_freed_memory();
  faults_of_one_use(bytes);                         // the heap grows once...
  EXPECT_LT(faults_of_one_use(bytes), pages / 20);  // ...and the pages stay
#else
  GTEST_SKIP() << "glibc only";
#endif
}

}  // namespace
}  // namespace lpsim
