#pragma once
// A string cut at every separator (empty fields kept): "a|b||c" -> a, b, "", c.
#include <string>
#include <vector>

namespace lpsim {

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) parts.push_back(s.substr(start, i - start)), start = i + 1;
  return parts;
}

}  // namespace lpsim
