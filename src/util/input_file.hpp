#pragma once
// What lpsim reads as input (models, shards, plans, sweeps, weights, token and image files, plan axes) must be a
// regular file: a FIFO would block forever and /dev/zero would be read until memory runs out. file_identity says
// which version of a file a result was made from, so a sweep never mixes rows made from two versions of its inputs.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "lpsim/config/config_error.hpp"
#include "lpsim/util/fnv1a.hpp"

namespace lpsim {

// Throws ConfigError "<what> '<path>' ..." unless path (links followed) is a regular file.
inline void require_regular_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw ConfigError(fmt::format("cannot open {} '{}': no such file", what, path));
  if (fs::is_directory(st)) throw ConfigError(fmt::format("{} '{}' is a directory, not a file", what, path));
  if (!fs::is_regular_file(st))
    throw ConfigError(fmt::format("{} '{}' is not a regular file (a FIFO, device or socket is never read)", what, path));
}

// "<size> bytes, modified <ns since epoch>, fnv1a <hash of the first and last MiB>": changes when the file is
// rewritten, replaced or touched. The two MiB hashed keep this cheap for a checkpoint of many GB; together with the
// size and time it tells versions apart.
inline std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  const long long ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  std::ifstream in(path, std::ios::binary);
  constexpr std::streamoff window = 1 << 20;
  std::uint64_t h = fnv1a_basis;
  auto fold = [&](std::streamoff from, std::streamoff count) {
    std::string buf(static_cast<std::size_t>(count), '\0');
    in.clear();
    in.seekg(from);
    in.read(buf.data(), count);
    for (std::streamsize i = 0; i < in.gcount(); ++i) h = fnv1a_add(h, static_cast<unsigned char>(buf[i]), 1);
  };
  const std::streamoff size = st.st_size;
  fold(0, std::min(size, window));
  if (size > window) fold(std::max(window, size - window), std::min(window, size - window));
  return fmt::format("{} bytes, modified {}, fnv1a {:016x}", size, ns, h);
}

}  // namespace lpsim
