#pragma once
// One CSV cell as RFC 4180 writes it: quoted (with doubled quotes) when it holds a comma, a quote or a line break,
// so a name like "my,plan" never shifts the columns after it.
#include <string>

namespace lpsim {

inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace lpsim
