#pragma once
// A CSV file read into memory (header and string cells; RFC 4180 quotes), for statistics over results.
#include <string>
#include <string_view>
#include <vector>

namespace lpsim {

struct CsvTable {
  std::string source;  // file name, for messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  // Index of a column; throws ConfigError listing the columns (with a suggestion) when there is none.
  int column(std::string_view name) const;
  bool has(std::string_view name) const {
    for (const auto& h : header)
      if (h == name) return true;
    return false;
  }
  // The column as numbers (inf and nan accepted); throws naming row and column for a cell that is no number.
  std::vector<double> numbers(std::string_view name) const;
};

CsvTable parse_csv(std::string_view text, const std::string& source);
CsvTable read_csv(const std::string& path);

}  // namespace lpsim
