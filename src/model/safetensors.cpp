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

// Looks tensors up by name under an optional prefix and checks shapes.
struct Checkpoint {
  const std::map<std::string, Tensor>& tensors;
  std::string path, prefix;

  mutable std::set<std::string> read;  // names read so far (load_safetensors_weights rejects the others)

  const Tensor& get(const std::string& name, std::vector<std::int64_t> shape) const {
    read.insert(prefix + name);
    auto it = tensors.find(prefix + name);
    if (it == tensors.end()) throw ConfigError(fmt::format("safetensors file '{}': tensor '{}' is missing", path, prefix + name));
    if (it->second.shape != shape)
      throw ConfigError(fmt::format("safetensors file '{}': tensor '{}' has shape {}, the model needs {}", path,
                                    prefix + name, it->second.shape, shape));
    return it->second;
  }
  bool has(const std::string& name) const {
    read.insert(prefix + name);
    return tensors.contains(prefix + name);
  }
  Matrix<double> matrix(const std::string& name, int rows, int cols, bool transposed) const {
    const Tensor& t = get(name, transposed ? std::vector<std::int64_t>{cols, rows} : std::vector<std::int64_t>{rows, cols});
    Matrix<double> m(rows, cols);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) m(i, j) = transposed ? t.values[std::size_t(j) * rows + i] : t.values[std::size_t(i) * cols + j];
    return m;
  }
  std::vector<double> vector(const std::string& name, int n) const { return get(name, {n}).values; }
};

std::string find_prefix(const std::map<std::string, Tensor>& t, const std::vector<std::string>& probes) {
  for (const std::string& p : {std::string(), std::string("transformer."), std::string("vit."), std::string("model.")})
    for (const auto& probe : probes)
      if (t.contains(p + probe)) return p;
  return "";
}

}  // namespace

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

Weights<double> load_safetensors_weights(const std::string& path, const ModelConfig& cfg) {
  const auto tensors = read_checkpoint(path);
  const int d = cfg.width, f = cfg.ffn, dq = cfg.q_width(), dkv = cfg.kv_width();
  Weights<double> w;
  const bool vit = tensors.contains("encoder.layer.0.attention.attention.query.weight") ||
                   tensors.contains("vit.encoder.layer.0.attention.attention.query.weight") ||
                   tensors.contains("embeddings.cls_token") || tensors.contains("vit.embeddings.cls_token");
  const bool llama = cfg.arch == "llama";
  const Checkpoint ck{tensors, path,
                      find_prefix(tensors, {"h.0.ln_1.weight", "wte.weight", "encoder.layer.0.layernorm_before.weight",
                                            "embeddings.cls_token", "layers.0.input_layernorm.weight",
                                            "embed_tokens.weight"})};
  auto norm = [&](const std::string& base) {
    NormWeights<double> n{ck.vector(base + ".weight", d), {}};
    if (cfg.norm == NormKind::layernorm) n.beta = ck.vector(base + ".bias", d);
    if (ck.has(base + ".eps")) {  // lpsim's extension: the norm's own eps (scripts/train_digits.py writes it)
      n.eps = ck.vector(base + ".eps", 1)[0];
      if (!(n.eps >= 0))
        throw ConfigError(fmt::format("safetensors file '{}': tensor '{}' is {}, an eps must be >= 0", path, base + ".eps", n.eps));
    }
    return n;
  };
  auto bias = [&](const std::string& name, int n) { return cfg.bias ? ck.vector(name, n) : std::vector<double>{}; };
  for (int l = 0; l < cfg.depth; ++l) {
    LayerWeights<double> lw;
    if (llama) {  // Llama, Mistral, Qwen2: nn.Linear weights are out x in
      const std::string p = fmt::format("layers.{}.", l);
      lw.wq = ck.matrix(p + "self_attn.q_proj.weight", d, dq, true);
      lw.wk = ck.matrix(p + "self_attn.k_proj.weight", d, dkv, true);
      lw.wv = ck.matrix(p + "self_attn.v_proj.weight", d, dkv, true);
      lw.wo = ck.matrix(p + "self_attn.o_proj.weight", dq, d, true);
      if (cfg.has_qkv_bias()) {
        lw.bq = ck.vector(p + "self_attn.q_proj.bias", dq), lw.bk = ck.vector(p + "self_attn.k_proj.bias", dkv);
        lw.bv = ck.vector(p + "self_attn.v_proj.bias", dkv);
      }
      lw.w1 = ck.matrix(p + "mlp.gate_proj.weight", d, f, true);
      lw.w3 = ck.matrix(p + "mlp.up_proj.weight", d, f, true);
      lw.w2 = ck.matrix(p + "mlp.down_proj.weight", f, d, true);
      lw.norm1 = norm(p + "input_layernorm"), lw.norm2 = norm(p + "post_attention_layernorm");
    } else if (vit) {
      const std::string p = fmt::format("encoder.layer.{}.", l);
      lw.wq = ck.matrix(p + "attention.attention.query.weight", d, d, true);
      lw.wk = ck.matrix(p + "attention.attention.key.weight", d, d, true);
      lw.wv = ck.matrix(p + "attention.attention.value.weight", d, d, true);
      lw.wo = ck.matrix(p + "attention.output.dense.weight", d, d, true);
      lw.w1 = ck.matrix(p + "intermediate.dense.weight", d, f, true);
      lw.w2 = ck.matrix(p + "output.dense.weight", f, d, true);
      lw.bq = bias(p + "attention.attention.query.bias", d), lw.bk = bias(p + "attention.attention.key.bias", d);
      lw.bv = bias(p + "attention.attention.value.bias", d), lw.bo = bias(p + "attention.output.dense.bias", d);
      lw.b1 = bias(p + "intermediate.dense.bias", f), lw.b2 = bias(p + "output.dense.bias", d);
      if (cfg.has_qkv_bias() != cfg.bias) {  // ViT's qkv_bias = false
        const bool b = cfg.has_qkv_bias();
        lw.bq = b ? ck.vector(p + "attention.attention.query.bias", d) : std::vector<double>{};
        lw.bk = b ? ck.vector(p + "attention.attention.key.bias", d) : std::vector<double>{};
        lw.bv = b ? ck.vector(p + "attention.attention.value.bias", d) : std::vector<double>{};
      }
      lw.norm1 = norm(p + "layernorm_before"), lw.norm2 = norm(p + "layernorm_after");
    } else {
      const std::string p = fmt::format("h.{}.", l);
      const Matrix<double> qkv = ck.matrix(p + "attn.c_attn.weight", d, 3 * d, false);
      lw.wq = columns(qkv, 0, d), lw.wk = columns(qkv, d, d), lw.wv = columns(qkv, 2 * d, d);
      lw.wo = ck.matrix(p + "attn.c_proj.weight", d, d, false);
      lw.w1 = ck.matrix(p + "mlp.c_fc.weight", d, f, false);
      lw.w2 = ck.matrix(p + "mlp.c_proj.weight", f, d, false);
      if (cfg.bias) {
        const auto b = ck.vector(p + "attn.c_attn.bias", 3 * d);
        lw.bq.assign(b.begin(), b.begin() + d), lw.bk.assign(b.begin() + d, b.begin() + 2 * d);
        lw.bv.assign(b.begin() + 2 * d, b.end());
      }
      lw.bo = bias(p + "attn.c_proj.bias", d), lw.b1 = bias(p + "mlp.c_fc.bias", f), lw.b2 = bias(p + "mlp.c_proj.bias", d);
      lw.norm1 = norm(p + "ln_1"), lw.norm2 = norm(p + "ln_2");
    }
    w.layers.push_back(std::move(lw));
  }
  if (cfg.embedding == Embedding::patch) {
    const Tensor& pw = ck.get("embeddings.patch_embeddings.projection.weight", {d, cfg.channels, cfg.patch, cfg.patch});
    w.patch_w = Matrix<double>(cfg.patch_dim(), d);
    for (int o = 0; o < d; ++o)
      for (int i = 0; i < cfg.patch_dim(); ++i) w.patch_w(i, o) = pw.values[std::size_t(o) * cfg.patch_dim() + i];
    w.patch_b = bias("embeddings.patch_embeddings.projection.bias", d);
    if (cfg.class_token) w.cls = ck.get("embeddings.cls_token", {1, 1, d}).values;
    const Tensor& pos = ck.get("embeddings.position_embeddings", {1, cfg.tokens, d});
    w.pos = Matrix<double>(cfg.tokens, d);
    w.pos.data.assign(pos.values.begin(), pos.values.end());
  } else if (llama) {
    w.wte = ck.matrix("embed_tokens.weight", cfg.vocab, d, false);
  } else if (cfg.embedding == Embedding::tokens) {
    w.wte = ck.matrix("wte.weight", cfg.vocab, d, false);
    ck.read.insert(ck.prefix + "wpe.weight");
    auto it = tensors.find(ck.prefix + "wpe.weight");
    if (it == tensors.end()) throw ConfigError(fmt::format("safetensors file '{}': tensor 'wpe.weight' is missing", path));
    if (it->second.shape.size() != 2 || it->second.shape[1] != d || it->second.shape[0] < cfg.tokens)
      throw ConfigError(fmt::format("safetensors file '{}': tensor 'wpe.weight' has shape {}, the model needs [>= {}, {}]",
                                    path, it->second.shape, cfg.tokens, d));
    w.pos = Matrix<double>(cfg.tokens, d);
    std::copy_n(it->second.values.begin(), w.pos.size(), w.pos.data.begin());
  }
  if (cfg.final_norm) w.final_norm = norm(llama ? "norm" : vit ? "layernorm" : "ln_f");
  if (cfg.lm_head && !cfg.tie_word_embeddings) {  // outside the base model's prefix
    const Checkpoint root{tensors, path, ""};
    w.lm_head = root.matrix("lm_head.weight", d, cfg.vocab, true);
    ck.read.insert("lm_head.weight");
  }
  // Unread tensors: an untied head that the config calls tied, a layer beyond num_hidden_layers, ... Buffers that
  // transformers may save (attention masks, rotary inv_freq) and ViT's pooler are not parameters of the forward.
  // A model directory must be exactly the model; a single file named by a models/*.toml may hold more (a
  // trainer's classifier head, a GPT-2 file read as a bias-free variant).
  if (!std::filesystem::is_directory(path)) return w;
  for (const auto& [name, t] : tensors) {
    if (ck.read.contains(name)) continue;
    const bool known_extra = name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") ||
                             name.ends_with("rotary_emb.inv_freq") || name.starts_with("pooler.") ||
                             name.starts_with("vit.pooler.") || name.starts_with("classifier.") ||
                             (name == "lm_head.weight" && cfg.tie_word_embeddings);
    if (!known_extra)
      throw ConfigError(fmt::format("checkpoint '{}': tensor '{}' is not part of the model the config describes", path, name));
  }
  return w;
}

void save_safetensors_weights(const std::string& path, const ModelConfig& cfg, const Weights<double>& w,
                              const std::string& dtype) {
  std::map<std::string, Tensor> t;
  auto put = [&](const std::string& name, std::vector<std::int64_t> shape, std::vector<double> v) {
    if (!v.empty()) t[name] = Tensor{dtype, std::move(shape), std::move(v)};
  };
  auto mat = [&](const std::string& name, const Matrix<double>& m, bool transposed) {
    const Matrix<double> s = transposed ? transpose(m) : m;
    put(name, {s.rows, s.cols}, {s.data.begin(), s.data.end()});
  };
  auto vec = [&](const std::string& name, const std::vector<double>& v) { put(name, {std::int64_t(v.size())}, v); };
  const bool vit = cfg.arch == "encoder";
  for (int l = 0; l < int(w.layers.size()); ++l) {
    const LayerWeights<double>& lw = w.layers[l];
    if (vit) {
      const std::string p = fmt::format("encoder.layer.{}.", l);
      mat(p + "attention.attention.query.weight", lw.wq, true), vec(p + "attention.attention.query.bias", lw.bq);
      mat(p + "attention.attention.key.weight", lw.wk, true), vec(p + "attention.attention.key.bias", lw.bk);
      mat(p + "attention.attention.value.weight", lw.wv, true), vec(p + "attention.attention.value.bias", lw.bv);
      mat(p + "attention.output.dense.weight", lw.wo, true), vec(p + "attention.output.dense.bias", lw.bo);
      mat(p + "intermediate.dense.weight", lw.w1, true), vec(p + "intermediate.dense.bias", lw.b1);
      mat(p + "output.dense.weight", lw.w2, true), vec(p + "output.dense.bias", lw.b2);
      vec(p + "layernorm_before.weight", lw.norm1.gamma), vec(p + "layernorm_before.bias", lw.norm1.beta);
      vec(p + "layernorm_after.weight", lw.norm2.gamma), vec(p + "layernorm_after.bias", lw.norm2.beta);
      if (lw.norm1.eps >= 0) t[p + "layernorm_before.eps"] = Tensor{"F64", {1}, {lw.norm1.eps}};
      if (lw.norm2.eps >= 0) t[p + "layernorm_after.eps"] = Tensor{"F64", {1}, {lw.norm2.eps}};
    } else {
      const std::string p = fmt::format("h.{}.", l);
      Matrix<double> qkv(cfg.width, 3 * cfg.width);
      set_columns(qkv, 0, lw.wq), set_columns(qkv, cfg.width, lw.wk), set_columns(qkv, 2 * cfg.width, lw.wv);
      mat(p + "attn.c_attn.weight", qkv, false);
      std::vector<double> b = lw.bq;
      b.insert(b.end(), lw.bk.begin(), lw.bk.end()), b.insert(b.end(), lw.bv.begin(), lw.bv.end());
      vec(p + "attn.c_attn.bias", b);
      mat(p + "attn.c_proj.weight", lw.wo, false), vec(p + "attn.c_proj.bias", lw.bo);
      mat(p + "mlp.c_fc.weight", lw.w1, false), vec(p + "mlp.c_fc.bias", lw.b1);
      mat(p + "mlp.c_proj.weight", lw.w2, false), vec(p + "mlp.c_proj.bias", lw.b2);
      vec(p + "ln_1.weight", lw.norm1.gamma), vec(p + "ln_1.bias", lw.norm1.beta);
      vec(p + "ln_2.weight", lw.norm2.gamma), vec(p + "ln_2.bias", lw.norm2.beta);
    }
  }
  if (cfg.embedding == Embedding::patch) {
    Tensor pw{dtype, {cfg.width, cfg.channels, cfg.patch, cfg.patch}, as_vector(transpose(w.patch_w).data)};
    t["embeddings.patch_embeddings.projection.weight"] = pw;
    vec("embeddings.patch_embeddings.projection.bias", w.patch_b);
    put("embeddings.cls_token", {1, 1, cfg.width}, w.cls);
    put("embeddings.position_embeddings", {1, cfg.tokens, cfg.width}, as_vector(w.pos.data));
  } else if (cfg.embedding == Embedding::tokens) {
    mat("wte.weight", w.wte, false), mat("wpe.weight", w.pos, false);
  }
  write_safetensors(path, t);
}

}  // namespace lpsim
