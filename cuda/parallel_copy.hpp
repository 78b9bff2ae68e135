#pragma once
// memcpy on all the host's threads, in chunks: staging through pinned memory (device_slot.hpp's PinnedSlot) only
// pays when the host side of the copy keeps pace with the bus, which one thread's memcpy does not. (Host C++ with
// OpenMP, callable from nvcc-compiled code.)
#include <cstddef>

namespace lpsim::cuda {

void parallel_copy(void* to, const void* from, std::size_t bytes);

}  // namespace lpsim::cuda
