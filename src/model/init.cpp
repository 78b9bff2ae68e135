#include "lpsim/model/init.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <charconv>
#include <cmath>
#include <fstream>
#include <numbers>
#include <sstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/safetensors.hpp"
#include "util/available_memory.hpp"
#include "util/input_file.hpp"

namespace lpsim {

std::uint64_t stream_id(const char* name, int layer) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a of the name, then the layer
  for (const char* p = name; *p; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ULL;
  return mix64(h + static_cast<std::uint64_t>(layer + 1));
}

double normal_at(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  // Box-Muller on the uniform pair of index/2: even indices take the cosine, odd ones the sine.
  const std::uint64_t pair = index / 2;
  const double u1 = (static_cast<double>(random_bits(seed, stream, 2 * pair) >> 11) + 0.5) * 0x1p-53;
  const double u2 = static_cast<double>(random_bits(seed, stream, 2 * pair + 1) >> 11) * 0x1p-53;
  const double r = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * std::numbers::pi * u2;
  return r * (index % 2 ? std::sin(angle) : std::cos(angle));
}

namespace {

using Dense = Eigen::MatrixXd;

struct Drawer {
  std::uint64_t seed;
  Dense gaussian(const char* name, int layer, int rows, int cols, double std) const {
    Dense m(rows, cols);
    const std::uint64_t s = stream_id(name, layer);
    const std::uint64_t n = std::uint64_t(rows) * cols;
    for (std::uint64_t i = 0; i < n; i += 2) {  // both numbers of a Box-Muller pair (normal_at's values)
      const double u1 = (static_cast<double>(random_bits(seed, s, i) >> 11) + 0.5) * 0x1p-53;
      const double u2 = static_cast<double>(random_bits(seed, s, i + 1) >> 11) * 0x1p-53;
      const double r = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * std::numbers::pi * u2;
      m(int(i / cols), int(i % cols)) = std * r * std::cos(angle);
      if (i + 1 < n) m(int((i + 1) / cols), int((i + 1) % cols)) = std * r * std::sin(angle);
    }
    return m;
  }
  // n x k with orthonormal columns (Q of a Gaussian matrix's QR, signs fixed so it is unique).
  Dense orthonormal(const char* name, int layer, int n, int k) const {
    const Dense g = gaussian(name, layer, n, k, 1.0);
    Eigen::HouseholderQR<Dense> qr(g);
    Dense q = qr.householderQ() * Dense::Identity(n, k);
    const Dense r = qr.matrixQR();
    for (int j = 0; j < k; ++j)
      if (r(j, j) < 0) q.col(j) *= -1;
    return q;
  }
};

// Singular values spaced geometrically from top down to top/kappa.
Eigen::VectorXd geometric(int k, double top, double kappa) {
  Eigen::VectorXd s(k);
  for (int i = 0; i < k; ++i) s(i) = top * std::pow(kappa, -(k > 1 ? double(i) / (k - 1) : 0.0));
  return s;
}

double spectral_norm(const Dense& m) { return Eigen::JacobiSVD<Dense>(m).singularValues()(0); }

// ||Q K^T||_2 of two width x d_head factors without the width x width product (a full SVD of it per head took
// 126 s at width 1024 and did not finish at 4096): with thin QR factors Q = U R_q and K = V R_k, U and V with
// orthonormal columns, ||Q K^T||_2 = ||R_q R_k^T||_2, a d_head x d_head SVD.
double product_norm(const Dense& q, const Dense& k) {
  const Eigen::Index dh = q.cols();
  if (q.rows() < dh || k.rows() < dh) return spectral_norm(q * k.transpose());
  const Dense rq = Eigen::HouseholderQR<Dense>(q).matrixQR().topRows(dh).triangularView<Eigen::Upper>();
  const Dense rk = Eigen::HouseholderQR<Dense>(k).matrixQR().topRows(dh).triangularView<Eigen::Upper>();
  return spectral_norm(rq * rk.transpose());
}

Matrix<double> to_matrix(const Dense& d) {
  Matrix<double> m(int(d.rows()), int(d.cols()));
  for (int i = 0; i < m.rows; ++i)
    for (int j = 0; j < m.cols; ++j) m(i, j) = d(i, j);
  return m;
}
std::vector<double> to_vector(const Dense& d) { return std::vector<double>(d.data(), d.data() + d.size()); }

// Shapes W_Q and W_K of one head (width x d_head each) so that W_Q W_K^T has the requested condition number and
// logit scale ||W_Q W_K^T||_2 / sqrt(d_head), keeping what was drawn where nothing was requested.
void shape_qk(const InitConfig& init, const Drawer& draw, int layer, int head, Dense& q, Dense& k) {
  if (init.kappa_qk < 1 && !(init.logit_scale > 0)) return;  // nothing asked: keep the draw (and skip the SVD)
  const int dh = int(q.cols());
  const double drawn = product_norm(q, k);
  const double top = init.logit_scale > 0 ? init.logit_scale * std::sqrt(double(dh)) : drawn;
  if (init.kappa_qk >= 1) {
    // W_Q = U_q diag(sqrt s) R, W_K = U_k diag(sqrt s) R  =>  W_Q W_K^T = U_q diag(s) U_k^T.
    const int tag = layer * 4096 + head;
    const Dense uq = draw.orthonormal("qk.uq", tag, int(q.rows()), dh);
    const Dense uk = draw.orthonormal("qk.uk", tag, int(k.rows()), dh);
    const Dense r = draw.orthonormal("qk.r", tag, dh, dh).transpose();
    const Eigen::VectorXd root = geometric(dh, top, init.kappa_qk).cwiseSqrt();
    q = uq * root.asDiagonal() * r;
    k = uk * root.asDiagonal() * r;
  } else if (init.logit_scale > 0 && drawn > 0) {
    const double f = std::sqrt(top / drawn);
    q *= f;
    k *= f;
  }
}

void shape_v(const InitConfig& init, const Drawer& draw, int layer, int head, Dense& v) {
  if (init.kappa_v < 1) return;
  const int dh = int(v.cols());
  const int tag = layer * 4096 + head;
  const Dense u = draw.orthonormal("v.u", tag, int(v.rows()), dh);
  const Dense r = draw.orthonormal("v.r", tag, dh, dh).transpose();
  v = u * geometric(dh, spectral_norm(v), init.kappa_v).asDiagonal() * r;
}

template <class M>
void round_all(M& values, const FormatSpec& f) {
  if (f == formats::fp32) {  // the cast rounds to nearest even
    for (double& x : values) x = double(float(x));
    return;
  }
  for (double& x : values) x = round_to(x, f, Rounding::nearest_even);
}

void round_weights(Weights<double>& w, const FormatSpec& f) {
  auto rm = [&](Matrix<double>& m) { round_all(m.data, f); };
  auto rv = [&](std::vector<double>& v) { round_all(v, f); };
  for (auto& l : w.layers) {
    for (auto* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3, &l.router}) rm(*m);
    for (auto* v : {&l.bq, &l.bk, &l.bv, &l.bo, &l.b1, &l.b2, &l.norm1.gamma, &l.norm1.beta, &l.norm2.gamma,
                    &l.norm2.beta, &l.q_norm.gamma, &l.k_norm.gamma, &l.post_norm1.gamma, &l.post_norm2.gamma})
      rv(*v);
    for (auto& e : l.experts) {
      for (auto* m : {&e.w1, &e.w2, &e.w3}) rm(*m);
      rv(e.b1), rv(e.b2);
    }
  }
  rm(w.patch_w), rm(w.pos), rm(w.wte), rv(w.patch_b), rv(w.cls);
  rm(w.lm_head), rv(w.final_norm.gamma), rv(w.final_norm.beta);
}

float f32(double v) { return static_cast<float>(v); }

// cos and sin of position * inv_freq in fp32 (the angle rounded to float, cos and sin correctly rounded), the second
// half of each row repeating the first: transformers' `freqs = inv_freq @ positions` (fp32), `cat(freqs, freqs)`.
void fill_rope_tables(const std::vector<double>& inv_freq, int tokens, Matrix<double>& cos, Matrix<double>& sin) {
  const int half = int(inv_freq.size()), d = 2 * half;
  cos = Matrix<double>(tokens, d), sin = Matrix<double>(tokens, d);
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < half; ++i) {
      const float angle = f32(double(t) * inv_freq[i]);
      cos(t, i) = cos(t, i + half) = double(f32(std::cos(double(angle))));
      sin(t, i) = sin(t, i + half) = double(f32(std::sin(double(angle))));
    }
}

void fill_rope_tables(Weights<double>& w, int tokens) {
  fill_rope_tables(w.rope_inv_freq, tokens, w.rope_cos, w.rope_sin);
  if (!w.rope_local_inv_freq.empty()) fill_rope_tables(w.rope_local_inv_freq, tokens, w.rope_local_cos, w.rope_local_sin);
}

// 1 / theta^(2i/d) step by step in fp32, as transformers' default rope init computes inv_freq.
std::vector<float> default_inv_freq(double theta, int d) {
  std::vector<float> inv(d / 2);
  for (int i = 0; i < d / 2; ++i) inv[i] = f32(1.0 / double(f32(std::pow(double(f32(theta)), double(f32(double(2 * i) / d))))));
  return inv;
}

}  // namespace

// The rotary frequencies are a buffer of the model: model.to(bfloat16) rounds them too, and transformers' forward
// converts them back with .float() before the angles, so the tables are fp32 of rounded frequencies.
Weights<double> params_rounded(const Weights<double>& w, const FormatSpec& f) {
  Weights<double> r = w;
  auto rv = [&](std::vector<double>& v) { round_all(v, f); };
  for (auto& l : r.layers) {
    for (auto* v : {&l.bq, &l.bk, &l.bv, &l.bo, &l.b1, &l.b2, &l.norm1.gamma, &l.norm1.beta, &l.norm2.gamma, &l.norm2.beta,
                    &l.q_norm.gamma, &l.k_norm.gamma, &l.post_norm1.gamma, &l.post_norm2.gamma})
      rv(*v);
    for (auto& e : l.experts) rv(e.b1), rv(e.b2);
  }
  round_all(r.wte.data, f), round_all(r.pos.data, f), rv(r.patch_b), rv(r.cls);
  rv(r.final_norm.gamma), rv(r.final_norm.beta);
  if (!r.rope_inv_freq.empty()) {
    rv(r.rope_inv_freq), rv(r.rope_local_inv_freq);
    fill_rope_tables(r, r.rope_cos.rows);
  }
  return r;
}

// transformers' rotary tables, step by step in fp32 (each operation rounded to float, as PyTorch's float32 tensors
// do): inv_freq_i = 1 / theta^((2i)/d) (llama3: stretched), angle = position * inv_freq, cos and sin of it
// (modelled correctly rounded), the second half of each row repeating the first.
void add_rope_tables(Weights<double>& w, const ModelConfig& cfg) {
  if (!(cfg.rope.theta > 0)) return;
  const int d = cfg.head_width(), half = d / 2;
  std::vector<float> inv = default_inv_freq(cfg.rope.theta, d);
  if (cfg.rope.scaling == "llama3") {  // transformers' _compute_llama3_parameters, in the same fp32 steps
    const RopeConfig& r = cfg.rope;
    const double old_len = r.original_max_positions;
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    for (int i = 0; i < half; ++i) {
      const float wavelen = f32(double(f32(2 * M_PI)) / double(inv[i]));
      float scaled = wavelen > low_wavelen ? f32(double(inv[i]) / double(f32(r.factor))) : inv[i];
      const float smooth = f32(double(f32(double(f32(old_len / double(wavelen))) - double(f32(r.low_freq_factor)))) /
                               double(f32(r.high_freq_factor - r.low_freq_factor)));
      const float smoothed = f32(double(f32(double(f32(double(f32(1.0 - double(smooth))) * double(scaled))) /
                                            double(f32(r.factor)))) +
                                 double(f32(double(smooth) * double(scaled))));
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      inv[i] = medium ? smoothed : scaled;
    }
  }
  w.rope_inv_freq.assign(inv.begin(), inv.end());
  if (cfg.rope_local_theta > 0 && cfg.sliding_pattern > 0) {  // Gemma 3's local layers: default rope, their own base
    const std::vector<float> local = default_inv_freq(cfg.rope_local_theta, d);
    w.rope_local_inv_freq.assign(local.begin(), local.end());
  }
  fill_rope_tables(w, cfg.tokens);
}

namespace {

// The LM head of a tied model: the token embedding, transposed.
void tie_head(Weights<double>& w) { w.lm_head = transpose(w.wte); }
Weights<double> init_weights(const ModelConfig& cfg, std::uint64_t seed);

}  // namespace

Weights<double> make_weights(const ModelConfig& cfg, std::uint64_t seed) {
  // Weights live as doubles, once; the emulated backend adds its rounded GEMM operands (floats where the input
  // format fits in one, else doubles) and the references read the doubles in place. A plan that stores parameters
  // in another format needs one more copy, checked where it is made (emulated_taps). Refuse what cannot fit
  // instead of dying in the allocator.
  const double need = 2 * 8 * parameter_count(cfg);
  if (const double have = available_memory_bytes(); have > 0 && need > have)
    throw ConfigError(fmt::format("model {}: {:.3g} parameters need about {:.1f} GB as lpsim holds them, {:.1f} GB are "
                                  "available", cfg.name, parameter_count(cfg), need / 1e9, have / 1e9));
  Weights<double> w = cfg.init.weights.empty() ? init_weights(cfg, seed) : load_safetensors_weights(cfg.init.weights, cfg);
  if (cfg.lm_head && cfg.tie_word_embeddings) tie_head(w);
  add_rope_tables(w, cfg);
  return w;
}

namespace {

Weights<double> init_weights(const ModelConfig& cfg, std::uint64_t seed) {
  const InitConfig& init = cfg.init;
  const Drawer draw{seed};
  const int d = cfg.width, f = cfg.ffn, dh = cfg.head_width(), dq = cfg.q_width(), dkv = cfg.kv_width();
  const bool grouped = dkv != dq;
  if (grouped && (init.kappa_qk >= 1 || init.logit_scale > 0 || init.kappa_v >= 1))
    throw ConfigError("init.kappa_qk, init.logit_scale and init.kappa_v need kv_heads = heads");
  auto std_of = [&](int in, int out) {
    return init.scheme == "xavier" ? init.scale * std::sqrt(2.0 / (in + out)) : init.scale * init.std;
  };
  auto bias = [&](const char* name, int layer, int n, bool present) {
    if (!present) return std::vector<double>{};
    return init.bias_std > 0 ? to_vector(draw.gaussian(name, layer, 1, n, init.bias_std)) : std::vector<double>(n, 0.0);
  };
  auto norm = [&](int n) {  // gains init.norm_gain as applied (Gemma's stored w is the gain less its offset)
    NormWeights<double> w{std::vector<double>(n, init.norm_gain - cfg.norm_gain_offset), {}};
    w.gain_offset = cfg.norm_gain_offset;
    if (cfg.norm == NormKind::layernorm) w.beta.assign(n, init.norm_bias);
    return w;
  };
  Weights<double> w;
  for (int l = 0; l < cfg.depth; ++l) {
    Dense q = draw.gaussian("wq", l, d, dq, std_of(d, dq)), k = draw.gaussian("wk", l, d, dkv, std_of(d, dkv));
    Dense v = draw.gaussian("wv", l, d, dkv, std_of(d, dkv));
    for (int h = 0; h < cfg.heads && !grouped; ++h) {
      Dense qh = q.middleCols(h * dh, dh), kh = k.middleCols(h * dh, dh), vh = v.middleCols(h * dh, dh);
      shape_qk(init, draw, l, h, qh, kh);
      shape_v(init, draw, l, h, vh);
      q.middleCols(h * dh, dh) = qh, k.middleCols(h * dh, dh) = kh, v.middleCols(h * dh, dh) = vh;
    }
    LayerWeights<double> lw;
    lw.wq = to_matrix(q), lw.wk = to_matrix(k), lw.wv = to_matrix(v);
    lw.wo = to_matrix(draw.gaussian("wo", l, dq, d, std_of(dq, d)));
    if (cfg.experts == 0) {
      lw.w1 = to_matrix(draw.gaussian("w1", l, d, f, std_of(d, f)));
      lw.w2 = to_matrix(draw.gaussian("w2", l, f, d, std_of(f, d)));
      if (cfg.mlp == Mlp::gated) lw.w3 = to_matrix(draw.gaussian("w3", l, d, f, std_of(d, f)));
    }
    const bool qb = cfg.has_qkv_bias();
    lw.bq = bias("bq", l, dq, qb), lw.bk = bias("bk", l, dkv, qb), lw.bv = bias("bv", l, dkv, qb);
    lw.bo = bias("bo", l, d, cfg.bias);
    if (cfg.experts == 0) lw.b1 = bias("b1", l, f, cfg.bias), lw.b2 = bias("b2", l, d, cfg.bias);
    // Experts draw streams of their own (tagged by layer and expert), so a dense model's draws are unchanged.
    if (cfg.experts > 0) lw.router = to_matrix(draw.gaussian("router", l, d, cfg.experts, std_of(d, cfg.experts)));
    for (int e = 0; e < cfg.experts; ++e) {
      const int tag = l * 4096 + e, fe = cfg.expert_width();
      LayerWeights<double> x;
      x.w1 = to_matrix(draw.gaussian("expert.w1", tag, d, fe, std_of(d, fe)));
      x.w2 = to_matrix(draw.gaussian("expert.w2", tag, fe, d, std_of(fe, d)));
      if (cfg.mlp == Mlp::gated) x.w3 = to_matrix(draw.gaussian("expert.w3", tag, d, fe, std_of(d, fe)));
      x.b1 = bias("expert.b1", tag, fe, cfg.bias), x.b2 = bias("expert.b2", tag, d, cfg.bias);
      lw.experts.push_back(std::move(x));
    }
    lw.norm1 = norm(d), lw.norm2 = norm(d);
    if (cfg.position == NormPosition::sandwich) lw.post_norm1 = norm(d), lw.post_norm2 = norm(d);
    if (cfg.qk_norm) {  // RMSNorms over a head's width (their gains like every norm's)
      lw.q_norm = norm(dh), lw.k_norm = norm(dh);
      lw.q_norm.beta.clear(), lw.k_norm.beta.clear();
    }
    w.layers.push_back(std::move(lw));
  }
  if (cfg.embedding == Embedding::patch) {
    w.patch_w = to_matrix(draw.gaussian("patch_w", -1, cfg.patch_dim(), d, std_of(cfg.patch_dim(), d)));
    w.patch_b = bias("patch_b", -1, d, cfg.bias);
    if (cfg.class_token) w.cls = to_vector(draw.gaussian("cls", -1, 1, d, 0.02));
  }
  if (cfg.embedding == Embedding::tokens) w.wte = to_matrix(draw.gaussian("wte", -1, cfg.vocab, d, 0.02));
  if (cfg.embedding == Embedding::patch || (cfg.embedding == Embedding::tokens && cfg.learned_positions))
    w.pos = to_matrix(draw.gaussian("pos", -1, cfg.tokens, d, 0.02));
  if (cfg.final_norm) w.final_norm = norm(d);
  if (cfg.lm_head && !cfg.tie_word_embeddings) w.lm_head = to_matrix(draw.gaussian("lm_head", -1, d, cfg.vocab, std_of(d, cfg.vocab)));
  round_weights(w, parse_format(init.storage).spec);
  return w;
}

}  // namespace

namespace {

// The words of an input file, a comment (from a word that starts with '#' to the end of its line) left out.
std::vector<std::string> input_words(const std::string& path) {
  require_regular_file(path, "input.file");
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("input.file: cannot open '{}'", path));
  std::vector<std::string> words;
  for (std::string word; in >> word;) {
    if (word[0] == '#') std::getline(in, word);
    else words.push_back(std::move(word));
  }
  return words;
}

std::vector<double> read_numbers(const std::string& path) {
  std::vector<double> v;
  for (const std::string& word : input_words(path)) {
    char* end = nullptr;
    const double x = std::strtod(word.c_str(), &end);
    if (end != word.c_str() + word.size())
      throw ConfigError(fmt::format("input.file '{}': '{}' (number {}) is not a number", path, word, v.size() + 1));
    v.push_back(x);
  }
  return v;
}

// Token ids as written: decimal digits only ("2.5", "2e0", "-1" and "0x2" are refused, never truncated), each
// below vocab, at most 65536 of them.
std::vector<int> read_token_ids(const std::string& path, int vocab) {
  std::vector<int> ids;
  for (const std::string& word : input_words(path)) {
    long long id = -1;
    const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || end != word.data() + word.size() || word[0] == '-' || id >= vocab)
      throw ConfigError(fmt::format("input.file '{}': '{}' (number {}) is not a token id in 0..{}", path, word,
                                    ids.size() + 1, vocab - 1));
    if (ids.size() == (1u << 16)) throw ConfigError(fmt::format("input.file '{}': more than 65536 token ids", path));
    ids.push_back(int(id));
  }
  return ids;
}

}  // namespace

void use_input_file(ModelConfig& cfg, const std::string& path) {
  if (cfg.embedding == Embedding::tokens) {  // the sequence length is the file's
    const std::vector<int> ids = read_token_ids(path, cfg.vocab);
    if (ids.empty()) throw ConfigError(fmt::format("input file '{}' holds no token ids", path));
    cfg.tokens = int(ids.size());
  } else {
    read_numbers(path);  // a bad number is named now, not after the weights are made
  }
  cfg.input.file = path;
  if (const std::string problem = validate(cfg); !problem.empty())
    throw ConfigError(fmt::format("input file '{}': {}", path, problem));
}

ModelInput<double> make_input(const ModelConfig& cfg, std::uint64_t seed, int batch) {
  ModelInput<double> in;
  const std::uint64_t s = stream_id("input", batch);
  auto draw = [&](std::uint64_t i) {
    if (cfg.input.dist == "normal") return cfg.input.scale * normal_at(seed, s, i);
    return cfg.input.scale * (2.0 * (static_cast<double>(random_bits(seed, s, i) >> 11) * 0x1p-53) - 1.0);
  };
  if (cfg.embedding == Embedding::tokens) {
    if (!cfg.input.file.empty()) {
      in.ids = read_token_ids(cfg.input.file, cfg.vocab);
    } else {
      for (int t = 0; t < cfg.tokens; ++t) in.ids.push_back(static_cast<int>(random_bits(seed, s, t) % cfg.vocab));
    }
    if (int(in.ids.size()) != cfg.tokens)
      throw ConfigError(fmt::format("input.file '{}': {} token ids, model.tokens = {}", cfg.input.file, in.ids.size(), cfg.tokens));
    for (int id : in.ids)
      if (id < 0 || id >= cfg.vocab)
        throw ConfigError(fmt::format("input.file '{}': token id {} is outside 0..{}", cfg.input.file, id, cfg.vocab - 1));
    return in;
  }
  const bool patch = cfg.embedding == Embedding::patch;
  const std::size_t n = patch ? std::size_t(cfg.channels) * cfg.image * cfg.image : std::size_t(cfg.tokens) * cfg.width;
  std::vector<double> values;
  if (!cfg.input.file.empty()) {
    values = read_numbers(cfg.input.file);
    if (values.size() != n)
      throw ConfigError(fmt::format("input.file '{}': {} numbers, the model needs {} ({})", cfg.input.file,
                                    values.size(), n, patch ? "channels x image x image" : "tokens x width"));
  } else {
    values.resize(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = draw(i);
  }
  return input_from_values(cfg, std::move(values));
}

ModelInput<double> input_from_values(const ModelConfig& cfg, std::vector<double> values) {
  const FormatSpec storage = parse_format(cfg.init.storage).spec;
  const bool patch = cfg.embedding == Embedding::patch;
  const std::size_t n = patch ? std::size_t(cfg.channels) * cfg.image * cfg.image : std::size_t(cfg.tokens) * cfg.width;
  if (values.size() != n)
    throw ConfigError(fmt::format("an input of {} numbers, the model needs {} ({})", values.size(), n,
                                  patch ? "channels x image x image" : "tokens x width"));
  ModelInput<double> in;
  for (double& x : values) x = round_to(x, storage, Rounding::nearest_even);
  if (!patch) {
    in.x = Matrix<double>(cfg.tokens, cfg.width);
    in.x.data.assign(values.begin(), values.end());
    return in;
  }
  // Image (channel, row, column) -> patches, as a stride-p convolution sees them.
  const int p = cfg.patch, per_side = cfg.image / p;
  in.x = Matrix<double>(cfg.num_patches(), cfg.patch_dim());
  for (int py = 0; py < per_side; ++py)
    for (int px = 0; px < per_side; ++px)
      for (int c = 0; c < cfg.channels; ++c)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j)
            in.x(py * per_side + px, (c * p + i) * p + j) =
                values[(std::size_t(c) * cfg.image + py * p + i) * cfg.image + px * p + j];
  return in;
}

}  // namespace lpsim
