#pragma once
// The error of every config file (models/, sweeps/, plans): the message names the file, the line and the key.
#include <stdexcept>

namespace lpsim {

struct ConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace lpsim
