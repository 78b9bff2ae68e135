// A model's weights read from and written to safetensors under its family's tensor names (family.hpp's
// CheckpointLayout): one reader and one writer for every family.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/family.hpp"
#include "lpsim/model/safetensors.hpp"

namespace lpsim {

namespace {

using P = LayerParam;

bool is_norm(P p) {
  return p == P::norm1 || p == P::norm2 || p == P::q_norm || p == P::k_norm || p == P::post_norm1 || p == P::post_norm2;
}
bool is_matrix(P p) { return p <= P::w2 || p == P::router; }

// in x out, as LayerWeights holds it.
std::pair<int, int> matrix_shape(P p, const ModelConfig& c) {
  const int d = c.width, f = c.ffn, dq = c.q_width(), dkv = c.kv_width();
  switch (p) {
    case P::wq: return {d, dq};
    case P::wk: case P::wv: return {d, dkv};
    case P::wo: return {dq, d};
    case P::w1: case P::w3: return {d, f};
    case P::router: return {d, c.experts};
    default: return {f, d};  // w2
  }
}

int vector_length(P p, const ModelConfig& c) {
  switch (p) {
    case P::bq: return c.q_width();
    case P::bk: case P::bv: return c.kv_width();
    case P::b1: return c.ffn;
    case P::q_norm: case P::k_norm: return c.head_width();
    default: return c.width;  // bo, b2, norm1, norm2
  }
}

// A layer's parameter by name, const or not (the reader fills them, the writer reads them).
template <class L>
auto& matrix_of(L& w, P p) {
  switch (p) {
    case P::wq: return w.wq;
    case P::wk: return w.wk;
    case P::wv: return w.wv;
    case P::wo: return w.wo;
    case P::w1: return w.w1;
    case P::w3: return w.w3;
    case P::router: return w.router;
    default: return w.w2;
  }
}

template <class L>
auto& vector_of(L& w, P p) {
  switch (p) {
    case P::bq: return w.bq;
    case P::bk: return w.bk;
    case P::bv: return w.bv;
    case P::bo: return w.bo;
    case P::b1: return w.b1;
    default: return w.b2;
  }
}

template <class L>
auto& norm_of(L& w, P p) {
  return p == P::norm1 ? w.norm1 : p == P::norm2 ? w.norm2 : p == P::q_norm ? w.q_norm : p == P::k_norm ? w.k_norm
         : p == P::post_norm1 ? w.post_norm1 : w.post_norm2;
}

// Per-head query/key norms are RMSNorms in every family that has them (Qwen3, Gemma 3).
NormKind norm_kind(P p, const ModelConfig& c) { return p == P::q_norm || p == P::k_norm ? NormKind::rmsnorm : c.norm; }

// Looks tensors up by name under an optional prefix and checks shapes.
struct Checkpoint {
  const std::map<std::string, Tensor>& tensors;
  std::string path, prefix;
  mutable std::set<std::string> read;  // names read so far (a directory's other tensors are refused)

  const Tensor& get(const std::string& name, const std::vector<std::int64_t>& shape) const {
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
  // rows x cols as lpsim holds it; `transposed`: stored cols x rows (nn.Linear's out x in).
  Matrix<double> matrix(const std::string& name, int rows, int cols, bool transposed) const {
    const Tensor& t = get(name, transposed ? std::vector<std::int64_t>{cols, rows} : std::vector<std::int64_t>{rows, cols});
    Matrix<double> m(rows, cols);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) m(i, j) = transposed ? t.values[std::size_t(j) * rows + i] : t.values[std::size_t(i) * cols + j];
    return m;
  }
  std::vector<double> vector(const std::string& name, int n) const { return get(name, {n}).values; }
};

std::string block_prefix(const CheckpointLayout& l, int layer) { return fmt::format(fmt::runtime(l.layer), layer); }

std::string tensor_name(const LayerTensor& t) { return is_norm(t.parts.front()) ? t.name + ".weight" : t.name; }

// The base model's prefix under which the layout's tensors are found; nullopt when none of its probes is there.
std::optional<std::string> find_prefix(const std::map<std::string, Tensor>& tensors, const CheckpointLayout& l) {
  std::vector<std::string> probes;
  if (!l.block.empty()) probes.push_back(block_prefix(l, 0) + tensor_name(l.block.front()));
  for (const std::string& s : {l.token_embedding, l.class_token})
    if (!s.empty()) probes.push_back(s);
  for (const std::string& p : l.prefixes)
    for (const std::string& probe : probes)
      if (tensors.contains(p + probe)) return p;
  return std::nullopt;
}

// Whether a layout holds every parameter the forward reads under this config.
bool covers(const CheckpointLayout& l, const ModelConfig& c) {
  std::set<P> have;
  for (const LayerTensor& t : l.block) have.insert(t.parts.begin(), t.parts.end());
  std::vector<P> need{P::wq, P::wk, P::wv, P::wo, P::norm1, P::norm2};
  if (c.experts > 0 && l.expert.empty()) return false;
  if (c.experts == 0) need.insert(need.end(), {P::w1, P::w2});
  if (c.experts == 0 && c.mlp == Mlp::gated) need.push_back(P::w3);
  if (c.qk_norm) need.insert(need.end(), {P::q_norm, P::k_norm});
  if (c.position == NormPosition::sandwich) need.insert(need.end(), {P::post_norm1, P::post_norm2});
  for (P p : need)
    if (!have.contains(p)) return false;
  if (c.embedding == Embedding::patch && l.patch_projection.empty()) return false;
  if (c.embedding == Embedding::tokens && l.token_embedding.empty()) return false;
  return !(c.final_norm && l.final_norm.empty());
}

[[noreturn]] void no_name(const ModelConfig& c, const std::string& what) {
  throw ConfigError(fmt::format("model family '{}' names no {} in its checkpoints (model.{} is not read from one)", c.arch,
                                what, what));
}

}  // namespace

// A fine-grained fp8 checkpoint's weights as values: each E4M3 `X.weight` [out, in] times its fp32
// `X.weight_scale_inv` [ceil(out / r), ceil(in / c)] block by block (exact in double: 4 by 24 significant bits), as
// transformers' fp8 integration dequantises them; the scale tensors are consumed.
static void dequantize_shipped_fp8(std::map<std::string, Tensor>& tensors, const ModelConfig& cfg, const std::string& path) {
  const int br = cfg.shipped_block_rows, bc = cfg.shipped_block_cols;
  std::vector<std::string> scales;
  for (const auto& [name, t] : tensors)
    if (name.ends_with(".weight_scale_inv")) scales.push_back(name);
  for (const std::string& name : scales) {
    const std::string weight = name.substr(0, name.size() - std::string_view("_scale_inv").size());
    auto it = tensors.find(weight);
    if (it == tensors.end())
      throw ConfigError(fmt::format("checkpoint '{}': tensor '{}' has no weight '{}'", path, name, weight));
    Tensor& w = it->second;
    const Tensor& s = tensors.at(name);
    if (w.dtype != "F8_E4M3" || w.shape.size() != 2)
      throw ConfigError(fmt::format("checkpoint '{}': tensor '{}' is {} {}, an fp8 checkpoint's scaled weight is a "
                                    "F8_E4M3 matrix", path, weight, w.dtype, w.shape));
    const std::int64_t out = w.shape[0], in = w.shape[1], grid_r = (out + br - 1) / br, grid_c = (in + bc - 1) / bc;
    if (s.shape != std::vector<std::int64_t>{grid_r, grid_c})
      throw ConfigError(fmt::format("checkpoint '{}': tensor '{}' has shape {}; {} x {} blocks of {} x {} need [{}, {}]",
                                    path, name, s.shape, out, in, br, bc, grid_r, grid_c));
    for (std::int64_t o = 0; o < out; ++o)
      for (std::int64_t i = 0; i < in; ++i) w.values[std::size_t(o * in + i)] *= s.values[std::size_t((o / br) * grid_c + i / bc)];
    w.dtype = "F32";  // now values, no longer codes
    tensors.erase(name);
  }
  for (const auto& [name, t] : tensors)
    if (t.dtype == "F8_E4M3")
      throw ConfigError(fmt::format("checkpoint '{}': tensor '{}' is F8_E4M3 without a weight_scale_inv", path, name));
}

Weights<double> load_safetensors_weights(const std::string& path, const ModelConfig& cfg) {
  auto tensors = read_checkpoint(path);
  if (cfg.shipped_quantization == "fp8") dequantize_shipped_fp8(tensors, cfg, path);
  const Family* family = family_by_arch(cfg.arch);
  if (!family) throw ConfigError(fmt::format("model.arch = '{}' is not a family ({})", cfg.arch, fmt::join(family_arch_names(), ", ")));
  // The family's own names; a single file written under another family's names that hold this model is read
  // under those (a GPT-2-named file as an encoder, as the trainer of arXiv 2510.21770's experiments writes them).
  CheckpointLayout layout = checkpoint_layout(*family, cfg);
  std::optional<std::string> prefix = find_prefix(tensors, layout);
  if (!prefix)
    for (const Family* other : families()) {
      if (!other->layout) continue;
      CheckpointLayout l = other->layout(cfg);
      if (auto p = find_prefix(tensors, l); p && covers(l, cfg)) {
        layout = std::move(l), prefix = p;
        break;
      }
    }
  const Checkpoint ck{tensors, path, prefix.value_or(""), {}};
  const int d = cfg.width;
  auto norm = [&](const std::string& base, int n, NormKind kind) {
    NormWeights<double> nw{ck.vector(base + ".weight", n), {}};
    nw.gain_offset = cfg.norm_gain_offset;  // Gemma stores w and applies 1 + w
    if (kind == NormKind::layernorm) nw.beta = ck.vector(base + ".bias", n);
    if (ck.has(base + ".eps")) {  // lpsim's extension: the norm's own eps (scripts/train_digits.py writes it)
      nw.eps = ck.vector(base + ".eps", 1)[0];
      if (!(nw.eps >= 0))
        throw ConfigError(fmt::format("safetensors file '{}': tensor '{}' is {}, an eps must be >= 0", path, base + ".eps", nw.eps));
    }
    return nw;
  };
  // A block's (or an expert's) tensors under prefix p into lw, with c's sizes.
  auto read_block = [&](const std::string& p, const std::vector<LayerTensor>& tensors, const ModelConfig& c,
                        LayerWeights<double>& lw) {
    for (const LayerTensor& t : tensors) {
      const P first = t.parts.front();
      if (is_norm(first)) {
        norm_of(lw, first) = norm(p + t.name, vector_length(first, c), norm_kind(first, c));
      } else if (is_matrix(first)) {  // the parts side by side along the output axis
        int cols = 0;
        for (P part : t.parts) cols += matrix_shape(part, c).second;
        const int rows = matrix_shape(first, c).first;
        const Matrix<double> all = ck.matrix(p + t.name, rows, cols, t.stored == Stored::out_in);
        int at = 0;
        for (P part : t.parts) {
          const int n = matrix_shape(part, c).second;
          matrix_of(lw, part) = t.parts.size() == 1 ? all : columns(all, at, n);
          at += n;
        }
      } else {
        int n = 0;
        for (P part : t.parts) n += vector_length(part, c);
        const std::vector<double> all = ck.vector(p + t.name, n);
        int at = 0;
        for (P part : t.parts) {
          const int len = vector_length(part, c);
          vector_of(lw, part).assign(all.begin() + at, all.begin() + at + len);
          at += len;
        }
      }
    }
  };
  // The router and the experts of a block under prefix p: one by one as checkpoints ship, or stacked (transformers 5).
  ModelConfig expert_cfg = cfg;
  expert_cfg.ffn = cfg.expert_width();
  auto read_experts = [&](const std::string& p, LayerWeights<double>& lw) {
    const bool one_by_one = layout.expert_block.empty() || layout.fused_experts.empty() ||
                            ck.has(p + fmt::format(fmt::runtime(layout.expert), 0) + layout.expert_block.front().name);
    const int f = expert_cfg.ffn, d = cfg.width;
    lw.router = ck.matrix(p + (one_by_one ? layout.router : layout.fused_router), d, cfg.experts, true);
    lw.experts.resize(std::size_t(cfg.experts));
    if (one_by_one) {
      for (int e = 0; e < cfg.experts; ++e)
        read_block(p + fmt::format(fmt::runtime(layout.expert), e), layout.expert_block, expert_cfg, lw.experts[e]);
      return;
    }
    const Tensor& gate_up = ck.get(p + layout.fused_experts + "gate_up_proj", {cfg.experts, 2 * f, d});
    const Tensor& down = ck.get(p + layout.fused_experts + "down_proj", {cfg.experts, d, f});
    for (int e = 0; e < cfg.experts; ++e) {
      LayerWeights<double>& x = lw.experts[e];
      x.w1 = Matrix<double>(d, f), x.w3 = Matrix<double>(d, f), x.w2 = Matrix<double>(f, d);
      const double* gu = gate_up.values.data() + std::size_t(e) * 2 * f * d;
      const double* dn = down.values.data() + std::size_t(e) * d * f;
      for (int j = 0; j < f; ++j)
        for (int i = 0; i < d; ++i) {
          x.w1(i, j) = gu[std::size_t(j) * d + i], x.w3(i, j) = gu[std::size_t(f + j) * d + i];
          x.w2(j, i) = dn[std::size_t(i) * f + j];
        }
    }
  };
  Weights<double> w;
  for (int layer = 0; layer < cfg.depth; ++layer) {
    const std::string p = block_prefix(layout, layer);
    LayerWeights<double> lw;
    read_block(p, layout.block, cfg, lw);
    if (cfg.experts > 0) {
      if (layout.expert.empty()) no_name(cfg, "experts");
      read_experts(p, lw);
    }
    w.layers.push_back(std::move(lw));
  }
  if (cfg.embedding == Embedding::patch) {
    if (layout.patch_projection.empty()) no_name(cfg, "patch embedding");
    const std::string proj = layout.patch_projection;
    const Tensor& pw = ck.get(proj + ".weight", {d, cfg.channels, cfg.patch, cfg.patch});
    w.patch_w = Matrix<double>(cfg.patch_dim(), d);
    for (int o = 0; o < d; ++o)
      for (int i = 0; i < cfg.patch_dim(); ++i) w.patch_w(i, o) = pw.values[std::size_t(o) * cfg.patch_dim() + i];
    if (cfg.bias) w.patch_b = ck.vector(proj + ".bias", d);
    if (cfg.class_token) w.cls = ck.get(layout.class_token, {1, 1, d}).values;
    const Tensor& pos = ck.get(layout.patch_positions, {1, cfg.tokens, d});
    w.pos = Matrix<double>(cfg.tokens, d);
    w.pos.data.assign(pos.values.begin(), pos.values.end());
  } else if (cfg.embedding == Embedding::tokens) {
    if (layout.token_embedding.empty()) no_name(cfg, "token embedding");
    w.wte = ck.matrix(layout.token_embedding, cfg.vocab, d, false);
    if (!layout.positions.empty()) {  // a learned table of at least `tokens` positions
      const std::string name = ck.prefix + layout.positions;
      ck.read.insert(name);
      auto it = tensors.find(name);
      if (it == tensors.end()) throw ConfigError(fmt::format("safetensors file '{}': tensor '{}' is missing", path, layout.positions));
      if (it->second.shape.size() != 2 || it->second.shape[1] != d || it->second.shape[0] < cfg.tokens)
        throw ConfigError(fmt::format("safetensors file '{}': tensor '{}' has shape {}, the model needs [>= {}, {}]", path,
                                      layout.positions, it->second.shape, cfg.tokens, d));
      w.pos = Matrix<double>(cfg.tokens, d);
      std::copy_n(it->second.values.begin(), w.pos.size(), w.pos.data.begin());
    }
  }
  if (cfg.final_norm) {
    if (layout.final_norm.empty()) no_name(cfg, "final norm");
    w.final_norm = norm(layout.final_norm, d, cfg.norm);
  }
  if (cfg.lm_head && !cfg.tie_word_embeddings) {  // outside the base model's prefix
    const Checkpoint root{tensors, path, "", {}};
    w.lm_head = root.matrix("lm_head.weight", d, cfg.vocab, true);
    ck.read.insert("lm_head.weight");
  }
  // Unread tensors: an untied head that the config calls tied, a layer beyond num_hidden_layers, ... Buffers that
  // transformers may save and a pooler or classifier are not parameters of the forward (the layout names them).
  // A model directory must be exactly the model; a single file named by a models/*.toml may hold more (a
  // trainer's classifier head, a GPT-2 file read as a bias-free variant).
  if (!std::filesystem::is_directory(path)) return w;
  for (const auto& [name, t] : tensors) {
    if (ck.read.contains(name)) continue;
    const bool ignored =
        std::any_of(layout.ignored_prefixes.begin(), layout.ignored_prefixes.end(), [&](const std::string& s) { return name.starts_with(s); }) ||
        std::any_of(layout.ignored_suffixes.begin(), layout.ignored_suffixes.end(), [&](const std::string& s) { return name.ends_with(s); }) ||
        (name == "lm_head.weight" && cfg.tie_word_embeddings);
    if (!ignored) throw ConfigError(fmt::format("checkpoint '{}': tensor '{}' is not part of the model the config describes", path, name));
  }
  return w;
}

void save_safetensors_weights(const std::string& path, const ModelConfig& cfg, const Weights<double>& w,
                              const std::string& dtype) {
  const Family* family = family_by_arch(cfg.arch);
  if (!family) throw ConfigError(fmt::format("model.arch = '{}' is not a family ({})", cfg.arch, fmt::join(family_arch_names(), ", ")));
  const CheckpointLayout layout = checkpoint_layout(*family, cfg);
  std::map<std::string, Tensor> t;
  auto put = [&](const std::string& name, std::vector<std::int64_t> shape, std::vector<double> v) {
    if (!v.empty()) t[name] = Tensor{dtype, std::move(shape), std::move(v)};
  };
  auto mat = [&](const std::string& name, const Matrix<double>& m, bool transposed) {
    const Matrix<double> s = transposed ? transpose(m) : m;
    put(name, {s.rows, s.cols}, {s.data.begin(), s.data.end()});
  };
  auto vec = [&](const std::string& name, const std::vector<double>& v) { put(name, {std::int64_t(v.size())}, v); };
  auto norm = [&](const std::string& base, const NormWeights<double>& n) {
    vec(base + ".weight", n.gamma), vec(base + ".bias", n.beta);
    if (n.eps >= 0) t[base + ".eps"] = Tensor{"F64", {1}, {n.eps}};
  };
  auto write_block = [&](const std::string& p, const std::vector<LayerTensor>& tensors, const LayerWeights<double>& lw) {
    for (const LayerTensor& tensor : tensors) {
      const P first = tensor.parts.front();
      if (is_norm(first)) {
        norm(p + tensor.name, norm_of(lw, first));
      } else if (is_matrix(first)) {
        int cols = 0;
        bool empty = false;
        for (P part : tensor.parts) cols += matrix_of(lw, part).cols, empty |= matrix_of(lw, part).size() == 0;
        if (empty) continue;
        if (tensor.parts.size() == 1) {
          mat(p + tensor.name, matrix_of(lw, first), tensor.stored == Stored::out_in);
          continue;
        }
        Matrix<double> all(matrix_of(lw, first).rows, cols);  // fused: the parts side by side
        int at = 0;
        for (P part : tensor.parts) set_columns(all, at, matrix_of(lw, part)), at += matrix_of(lw, part).cols;
        mat(p + tensor.name, all, tensor.stored == Stored::out_in);
      } else {
        std::vector<double> all;
        for (P part : tensor.parts) all.insert(all.end(), vector_of(lw, part).begin(), vector_of(lw, part).end());
        vec(p + tensor.name, all);
      }
    }
  };
  for (int layer = 0; layer < int(w.layers.size()); ++layer) {  // experts one by one, as checkpoints ship
    const LayerWeights<double>& lw = w.layers[layer];
    const std::string p = block_prefix(layout, layer);
    write_block(p, layout.block, lw);
    if (!lw.router.empty()) mat(p + layout.router, lw.router, true);
    for (std::size_t e = 0; e < lw.experts.size(); ++e)
      write_block(p + fmt::format(fmt::runtime(layout.expert), e), layout.expert_block, lw.experts[e]);
  }
  if (cfg.embedding == Embedding::patch) {
    t[layout.patch_projection + ".weight"] =
        Tensor{dtype, {cfg.width, cfg.channels, cfg.patch, cfg.patch}, as_vector(transpose(w.patch_w).data)};
    vec(layout.patch_projection + ".bias", w.patch_b);
    put(layout.class_token, {1, 1, cfg.width}, w.cls);
    put(layout.patch_positions, {1, cfg.tokens, cfg.width}, as_vector(w.pos.data));
  } else if (cfg.embedding == Embedding::tokens) {
    mat(layout.token_embedding, w.wte, false);
    if (!layout.positions.empty()) mat(layout.positions, w.pos, false);
  }
  if (!w.final_norm.gamma.empty()) norm(layout.final_norm, w.final_norm);
  if (cfg.lm_head && !cfg.tie_word_embeddings) mat("lm_head.weight", w.lm_head, true);
  write_safetensors(path, t);
}

}  // namespace lpsim
