#pragma once
// An empty directory of this test process's own under the system's temporary directory (ctest runs tests in
// parallel processes, so the pid keeps two of them apart).
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lpsim::test {

inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("lpsim_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace lpsim::test
