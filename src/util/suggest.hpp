#pragma once
// "did you mean" for misspelt keys, presets and names: the closest candidate within edit distance 2.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace lpsim {

inline int edit_distance(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = int(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diag = row[0];
    row[0] = int(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" or "" when nothing is close.
template <class Range>
std::string did_you_mean(std::string_view word, const Range& candidates) {
  std::string best;
  int best_d = 3;
  for (const auto& c : candidates)
    if (int d = edit_distance(word, std::string_view(c)); d < best_d) best_d = d, best = std::string(c);
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// did_you_mean, and where nothing is that close, the candidates that contain the word as a dash-separated part
// ("fp16" -> 'autocast-fp16', 'pure-fp16'), so a short name finds its family instead of a look-alike.
template <class Range>
std::string did_you_mean_part(std::string_view word, const Range& candidates) {
  std::vector<std::string> parts;
  for (const auto& c : candidates) {
    const std::string s(c);
    for (std::size_t at = s.find(word); at != std::string::npos; at = s.find(word, at + 1)) {
      const bool starts = at == 0 || s[at - 1] == '-' || s[at - 1] == '+';
      const std::size_t end = at + word.size();
      if (!word.empty() && starts && (end == s.size() || s[end] == '-' || s[end] == '+')) {
        parts.push_back(s);
        break;
      }
    }
  }
  if (parts.empty() || parts.size() > 4) return did_you_mean(word, candidates);
  std::string list;
  for (std::size_t i = 0; i < parts.size(); ++i)
    list += (i == 0 ? "'" : i + 1 == parts.size() ? "' or '" : "', '") + parts[i];
  return " (did you mean " + list + "'?)";
}

}  // namespace lpsim
