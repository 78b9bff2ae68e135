#pragma once
// A whole text file, or ConfigError naming <what> and <path>: the one reader of config and results files. Only a
// regular file is read (util/input_file.hpp).
#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <string>

#include "lpsim/config/config_error.hpp"
#include "util/input_file.hpp"

namespace lpsim {

inline std::string read_text(const std::string& path, const std::string& what) {
  require_regular_file(path, what);
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("cannot open {} '{}'", what, path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace lpsim
