#include "lpsim/stats/csv_table.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "lpsim/config/config_error.hpp"
#include "util/read_text.hpp"
#include "util/suggest.hpp"

namespace lpsim {

namespace {

std::vector<std::string> split_line(std::string_view text, std::size_t& pos) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (quoted) {
      if (c == '"' && pos + 1 < text.size() && text[pos + 1] == '"') cells.back() += '"', ++pos;
      else if (c == '"') quoted = false;
      else cells.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else if (c == '\n') {
      ++pos;
      break;
    } else if (c != '\r') {
      cells.back() += c;
    }
  }
  return cells;
}

}  // namespace

CsvTable parse_csv(std::string_view text, const std::string& source) {
  CsvTable t;
  t.source = source;
  std::size_t pos = 0;
  if (text.empty()) throw ConfigError(fmt::format("{}: empty CSV file", source));
  t.header = split_line(text, pos);
  for (int line = 2; pos < text.size(); ++line) {
    auto cells = split_line(text, pos);
    if (cells.size() == 1 && cells[0].empty()) continue;
    if (cells.size() != t.header.size())
      throw ConfigError(fmt::format("{} line {}: {} cells, the header has {}", source, line, cells.size(), t.header.size()));
    t.rows.push_back(std::move(cells));
  }
  return t;
}

CsvTable read_csv(const std::string& path) { return parse_csv(read_text(path, "CSV file"), path); }

int CsvTable::column(std::string_view name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  std::string list;
  for (const auto& h : header) list += (list.empty() ? "" : ", ") + h;
  throw ConfigError(fmt::format("{}: no column '{}'{}; columns: {}", source, name, did_you_mean(name, header), list));
}

std::vector<double> CsvTable::numbers(std::string_view name) const {
  const int c = column(name);
  std::vector<double> v;
  v.reserve(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::string& cell = rows[r][c];
    char* end = nullptr;
    const double x = std::strtod(cell.c_str(), &end);
    if (cell.empty() || end != cell.c_str() + cell.size())
      throw ConfigError(fmt::format("{} row {}: column '{}' = '{}' is not a number", source, r + 2, name, cell));
    v.push_back(x);
  }
  return v;
}

}  // namespace lpsim
