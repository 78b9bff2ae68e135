#include "lpsim/model/safetensors.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/encoding.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "util/atomic_file.hpp"
#include "util/read_text.hpp"

namespace lpsim {

namespace {

struct DtypeInfo {
  const char* name;
  int bytes;
  FormatSpec spec;
};
constexpr DtypeInfo dtypes[] = {{"F64", 8, formats::fp64}, {"F32", 4, formats::fp32}, {"F16", 2, formats::fp16},
                                {"BF16", 2, formats::bf16}, {"F8_E4M3", 1, formats::e4m3}, {"F8_E5M2", 1, formats::e5m2}};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : dtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// The element count, or -1 when it overflows 2^62 (no file holds that much).
std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto s : shape)
    if (s < 0 || __builtin_mul_overflow(n, s, &n) || n > (std::int64_t(1) << 62)) return -1;
  return n;
}

}  // namespace

std::map<std::string, Tensor> read_safetensors(const std::string& path) {
  require_regular_file(path, "safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("cannot open safetensors file '{}'", path));
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& what) -> ConfigError { return ConfigError(fmt::format("safetensors file '{}': {}", path, what)); };
  if (bytes.size() < 8) throw fail(fmt::format("truncated: {} bytes, not even the 8-byte header length", bytes.size()));
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > bytes.size() - 8)
    throw fail(fmt::format("truncated: the header says {} bytes of JSON, the file has {} after the length", header_len,
                           bytes.size() - 8));
  nlohmann::json header;
  std::set<std::string> seen;  // top-level keys: JSON allows duplicates, a checkpoint must not have them
  std::string duplicate;
  const nlohmann::json::parser_callback_t unique = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& key) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && !seen.insert(key.get<std::string>()).second &&
        duplicate.empty())
      duplicate = key.get<std::string>();
    return true;
  };
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len), unique);
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("the JSON header does not parse: {}", e.what()));
  }
  if (!duplicate.empty()) throw fail(fmt::format("tensor '{}' appears twice in the header", duplicate));
  if (!header.is_object()) throw fail("the JSON header is not an object");
  const std::size_t data_start = 8 + header_len, data_len = bytes.size() - data_start;
  std::map<std::string, Tensor> out;
  struct Span {
    std::uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& what) { return fail(fmt::format("tensor '{}': {}", name, what)); };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw bad("needs dtype, shape and data_offsets");
    Tensor t;
    try {
      t.dtype = entry.at("dtype").get<std::string>();
      const auto& shape = entry.at("shape");
      const auto& offsets_json = entry.at("data_offsets");
      if (!shape.is_array()) throw bad("shape is not a list");
      for (const auto& s : shape)  // a fractional or negative dimension is no shape (JSON would truncate 2.5)
        if (!s.is_number_integer() || s.get<std::int64_t>() < 0) throw bad(fmt::format("shape {} has a dimension that is not a whole number >= 0", shape.dump()));
      if (!offsets_json.is_array() || offsets_json.size() != 2 || !offsets_json[0].is_number_unsigned() ||
          !offsets_json[1].is_number_unsigned())
        throw bad(fmt::format("data_offsets {} must be two whole numbers >= 0", offsets_json.dump()));
      t.shape = shape.get<std::vector<std::int64_t>>();
      const auto offsets = offsets_json.get<std::vector<std::uint64_t>>();
      const DtypeInfo* d = find_dtype(t.dtype);
      if (!d) throw bad(fmt::format("dtype '{}' is not supported (F64, F32, F16, BF16, F8_E4M3, F8_E5M2)", t.dtype));
      const auto [begin, end] = std::pair{offsets[0], offsets[1]};
      if (begin > end || end > data_len)
        throw bad(fmt::format("data_offsets [{}, {}] lie outside the {} data bytes (truncated file?)", begin, end, data_len));
      const std::int64_t n = numel(t.shape);
      if (n < 0) throw bad(fmt::format("shape {} has more elements than any file can hold", shape.dump()));
      spans.push_back({begin, end, name});
      if (end - begin != static_cast<std::uint64_t>(n) * d->bytes)
        throw bad(fmt::format("{} bytes for shape {} of {} ({} expected)", end - begin, t.shape, t.dtype, n * d->bytes));
      t.values.resize(static_cast<std::size_t>(n));
      const unsigned char* p = bytes.data() + data_start + begin;
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint64_t bits = 0;
        for (int b = d->bytes - 1; b >= 0; --b) bits = (bits << 8) | p[i * d->bytes + b];
        t.values[i] = d->bytes == 8   ? std::bit_cast<double>(bits)
                      : d->bytes == 4 ? double(std::bit_cast<float>(static_cast<std::uint32_t>(bits)))
                                      : decode(bits, d->spec);
      }
    } catch (const nlohmann::json::exception& e) {
      throw bad(fmt::format("malformed entry: {}", e.what()));
    }
    out.emplace(name, std::move(t));
  }
  // The tensors tile the data exactly: no gap, no overlap, nothing after the last (a header length that is off by
  // a byte shows up here rather than as every tensor read a byte off).
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::uint64_t covered = 0;
  for (const Span& s : spans) {
    if (s.begin > covered)
      throw fail(fmt::format("{} bytes before tensor '{}' belong to no tensor (data_offsets leave a gap)", s.begin - covered, s.name));
    if (s.begin < covered) throw fail(fmt::format("tensor '{}' overlaps the tensor before it (data_offsets)", s.name));
    covered = s.end;
  }
  if (covered != data_len)
    throw fail(fmt::format("the tensors cover {} of the {} data bytes (a wrong header length or a damaged file)", covered,
                           data_len));
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<unsigned char> data;
  for (const auto& [name, t] : tensors) {
    const DtypeInfo* d = find_dtype(t.dtype);
    if (!d) throw ConfigError(fmt::format("write_safetensors: tensor '{}': dtype '{}' is not supported", name, t.dtype));
    if (static_cast<std::int64_t>(t.values.size()) != numel(t.shape))
      throw ConfigError(fmt::format("write_safetensors: tensor '{}': {} values for shape {}", name, t.values.size(), t.shape));
    const std::size_t begin = data.size();
    for (double v : t.values) {
      if (!representable(v, d->spec))
        throw ConfigError(fmt::format("write_safetensors: tensor '{}': {} is not a {} value", name, v, t.dtype));
      const std::uint64_t bits = d->bytes == 8 ? std::bit_cast<std::uint64_t>(v)
                                 : d->bytes == 4 ? std::bit_cast<std::uint32_t>(static_cast<float>(v))
                                                 : encode(v, d->spec);
      for (int b = 0; b < d->bytes; ++b) data.push_back(static_cast<unsigned char>(bits >> (8 * b)));
    }
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8) text.push_back(' ');  // the format aligns the data to 8 bytes
  std::string file;
  const std::uint64_t len = text.size();
  for (int b = 0; b < 8; ++b) file.push_back(static_cast<char>(len >> (8 * b)));
  file += text;
  file.append(reinterpret_cast<const char*>(data.data()), data.size());
  write_atomically(path, file);
}

namespace {

// The shard files that model.safetensors.index.json's weight_map names, each once, checked to lie in the directory.
std::set<std::string> index_shards(const std::filesystem::path& index) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(index.string(), "checkpoint index"));
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(fmt::format("'{}' does not parse: {}", index.string(), e.what()));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw ConfigError(fmt::format("'{}': field 'weight_map' is missing or not an object", index.string()));
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw ConfigError(fmt::format("'{}': weight_map['{}'] is not a file name", index.string(), name));
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
      throw ConfigError(fmt::format("'{}': weight_map['{}'] = '{}' is not a file in the directory", index.string(), name, f));
    shards.insert(f);
  }
  return shards;
}

}  // namespace

std::vector<std::string> checkpoint_files(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return {path};
  const fs::path single = fs::path(path) / "model.safetensors", index = fs::path(path) / "model.safetensors.index.json";
  std::vector<std::string> files{(fs::path(path) / "config.json").string()};
  if (fs::is_regular_file(single)) {
    files.push_back(single.string());
  } else if (fs::is_regular_file(index)) {
    files.push_back(index.string());
    for (const std::string& shard : index_shards(index)) files.push_back((fs::path(path) / shard).string());
  }
  return files;
}

// Every tensor of a checkpoint: one safetensors file, or a Hugging Face directory (model.safetensors, or the shards
// that model.safetensors.index.json's weight_map names; a tensor found in two shards is an error).
std::map<std::string, Tensor> read_checkpoint(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return read_safetensors(path);
  const fs::path single = fs::path(path) / "model.safetensors", index = fs::path(path) / "model.safetensors.index.json";
  if (fs::is_regular_file(single)) return read_safetensors(single.string());
  if (!fs::is_regular_file(index))
    throw ConfigError(fmt::format("model directory '{}' has neither model.safetensors nor model.safetensors.index.json", path));
  std::map<std::string, Tensor> all;
  for (const std::string& shard : index_shards(index))
    for (auto& [name, t] : read_safetensors((fs::path(path) / shard).string()))
      if (!all.emplace(name, std::move(t)).second)
        throw ConfigError(fmt::format("model directory '{}': tensor '{}' appears in more than one shard", path, name));
  return all;
}

}  // namespace lpsim
