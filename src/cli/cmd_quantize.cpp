// `lpsim quantize --scheme S --shape R,C --axis A --in FILE`: a matrix quantised to a block-scaled format, each
// element's dequantised value and bit pattern, each block's scale and its bit pattern. `lpsim quantize --list`.
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "cli/commands.hpp"
#include "util/input_file.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/encoding.hpp"

namespace lpsim::cli {

namespace {

struct QuantizeOptions {
  std::string scheme, shape, input;
  int axis = 1;
  std::uint64_t seed = 0;  // stochastic schemes
  bool list = false;
};

std::vector<double> read_numbers(const std::string& path) {
  require_regular_file(path, "input file");
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot be read", path));
  std::vector<double> v;
  std::string word;
  for (int line_no = 1; std::getline(in, word); ++line_no) {
    if (const auto hash = word.find('#'); hash != std::string::npos) word.resize(hash);  // a comment to the line's end
    std::istringstream line(word);
    std::string token;
    while (line >> token) {
      char* end = nullptr;
      const double x = std::strtod(token.c_str(), &end);
      if (end != token.c_str() + token.size())
        throw ConfigError(fmt::format("{} line {}: '{}' is not a number", path, line_no, token));
      v.push_back(x);
    }
  }
  return v;
}

// A block's length along k ("k": all of it, int8-rowwise) and its shape.
std::string block_length(const BlockScheme& s) { return s.block > 0 ? std::to_string(s.block) : "k"; }
std::string block_shape(const BlockScheme& s) {
  return s.square ? fmt::format("{0}x{0}", s.block) : fmt::format("1x{}", block_length(s));
}

// The bit pattern of a block's scale: E8M0 is the biased exponent (0xff NaN); E4M3 its encoding; fp32 its bits.
std::string scale_bits(const BlockScheme& s, double scale) {
  if (s.rule == ScaleRule::pow2_floor || s.rule == ScaleRule::pow2_ceil || s.rule == ScaleRule::pow2_rceil)
    return std::isnan(scale) ? "0xff" : fmt::format("0x{:02x}", std::ilogb(scale) + 127);
  if (s.rule == ScaleRule::nvfp4) return fmt::format("0x{:02x}", encode(scale, formats::e4m3));
  return fmt::format("0x{:08x}", encode(scale, formats::fp32));
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto opt = std::make_shared<QuantizeOptions>();
  auto* cmd = app.add_subcommand("quantize", "Quantise a matrix to a block-scaled format (MX, NVFP4, DeepSeek fp8)");
  cmd->add_option("-s,--scheme", opt->scheme, "block scheme (--list shows them)");
  cmd->add_option("--shape", opt->shape, "rows,cols of the row-major values");
  cmd->add_option("--axis", opt->axis, "reduction dimension the blocks run along: 1 rows (A), 0 columns (B)")
      ->capture_default_str();
  cmd->add_option("--in", opt->input, "file of numbers, one or more per line, row-major");
  cmd->add_option("--seed", opt->seed, "random stream of the stochastic (-sr) schemes (default 0)");
  cmd->add_flag("--list", opt->list, "list the schemes with their definitions");
  cmd->callback([opt] {
    if (opt->list) {
      fmt::print("{:<17} {:>8} {:>6} {:>8} {:<22} {}\n", "scheme", "element", "block", "shape", "scale", "definition");
      for (const BlockScheme& s : block_schemes())
        fmt::print("{:<17} {:>8} {:>6} {:>8} {:<22} {}\n", s.name, s.element.name, block_length(s), block_shape(s),
                   s.scale_format, s.description);
      return;
    }
    if (opt->scheme.empty() || opt->shape.empty() || opt->input.empty())
      throw ConfigError("quantize: --scheme, --shape and --in are required (or --list)");
    const BlockScheme s = block_scheme(opt->scheme);
    int rows = 0, cols = 0;
    char comma = 0, extra = 0;
    std::istringstream sh(opt->shape);
    if (!(sh >> rows >> comma >> cols) || comma != ',' || (sh >> extra) || rows < 1 || cols < 1)
      throw ConfigError(fmt::format("--shape '{}' is not rows,cols with both positive", opt->shape));
    const std::vector<double> x = read_numbers(opt->input);
    if (x.size() != std::size_t(rows) * cols)
      throw ConfigError(fmt::format("{}: {} numbers, the shape {} x {} needs {}", opt->input, x.size(), rows, cols,
                                    std::size_t(rows) * cols));
    const BlockQuantized q = quantize_blocks(s, x, rows, cols, opt->axis, {opt->seed, 0, 0});
    fmt::print("scheme {} ({}); {} x {} blocks of {}; {} element(s) saturated{}\n", s.name, s.description,
               q.block_rows, q.block_cols, block_shape(s),
               q.saturated,
               q.tensor_scaled ? fmt::format("; tensor amax {:.9g}, encode scale {:.9g}", q.tensor_amax, q.tensor_scale)
                               : "");
    fmt::print("{:>6} {:>6} {:>16} {:>16} {:>8} {:>6}\n", "row", "col", "input", "dequantised", "element", "block");
    const int hex = (s.element.spec.width() + 3) / 4;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const double e = q.elements[std::size_t(r) * cols + c];
        fmt::print("{:>6} {:>6} {:>16.9g} {:>16.9g} {:>8} {:>6}\n", r, c, x[std::size_t(r) * cols + c], q.value(r, c),
                   fmt::format("0x{:0{}x}", encode(e, s.element.spec), hex), q.block_of(r, c));
      }
    fmt::print("{:>6} {:>16} {:>12}\n", "block", "scale", "bits");
    for (std::size_t b = 0; b < q.scales.size(); ++b)
      fmt::print("{:>6} {:>16.9g} {:>12}\n", b, q.scales[b], scale_bits(s, q.scales[b]));
  });
}

}  // namespace lpsim::cli
