#include "parallel_copy.hpp"

#include <cstdint>
#include <cstring>

#include "lpsim/util/parallel_for.hpp"

namespace lpsim::cuda {

void parallel_copy(void* to, const void* from, std::size_t bytes) {
  constexpr std::size_t chunk = std::size_t(1) << 20;
  const std::int64_t chunks = std::int64_t((bytes + chunk - 1) / chunk);
  parallel_for(chunks, chunks > 1, [&](std::int64_t c) {
    const std::size_t first = std::size_t(c) * chunk, count = bytes - first < chunk ? bytes - first : chunk;
    std::memcpy(static_cast<char*>(to) + first, static_cast<const char*>(from) + first, count);
  });
}

}  // namespace lpsim::cuda
