#pragma once
// Writes a whole file under a temporary name and renames it: readers and resumed runs see the old file or the
// complete new one, never a torn one.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "lpsim/config/config_error.hpp"

namespace lpsim {

inline void write_atomically(const std::string& path, const std::string& contents) {
  const std::string tmp = fmt::format("{}.tmp{}", path, static_cast<long>(getpid()));
  {
    std::ofstream out(tmp, std::ios::binary);
    out << contents;
    out.flush();
    if (!out) throw ConfigError(fmt::format("cannot write '{}'", tmp));
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace lpsim
