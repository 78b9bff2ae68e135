#pragma once
// An independent transformer forward in Eigen and double, written from the papers' equations without any lpsim
// layer code (alternative formulas where they exist: GELU through erfc, tanh-GELU through the logistic function),
// the oracle of the model tests.
#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "lpsim/model/weights.hpp"

namespace lpsim::test {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::RowVectorXd;

inline Mat to_eigen(const Matrix<double>& m) { return Eigen::Map<const Mat>(m.data.data(), m.rows, m.cols); }
inline Vec to_eigen(const std::vector<double>& v) { return Eigen::Map<const Vec>(v.data(), Eigen::Index(v.size())); }
inline Matrix<double> from_eigen(const Mat& m) {
  Matrix<double> out(int(m.rows()), int(m.cols()));
  Eigen::Map<Mat>(out.data.data(), m.rows(), m.cols()) = m;
  return out;
}

inline Mat layer_norm(const Mat& x, const NormWeights<double>& w, double eps, bool rms) {
  Mat y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    Vec r = x.row(i);
    if (!rms) r.array() -= r.mean();
    const double second = r.squaredNorm() / double(r.size());
    Vec out = (r / std::sqrt(second + eps)).cwiseProduct(to_eigen(w.gamma));
    if (!w.beta.empty()) out += to_eigen(w.beta);
    y.row(i) = out;
  }
  return y;
}

inline Mat softmax(const Mat& s, bool causal) {
  Mat p = Mat::Zero(s.rows(), s.cols());
  for (Eigen::Index i = 0; i < s.rows(); ++i) {
    const Eigen::Index n = causal ? std::min(i + 1, s.cols()) : s.cols();
    const Vec e = (s.row(i).head(n).array() - s.row(i).head(n).maxCoeff()).exp().matrix();
    p.row(i).head(n) = e / e.sum();
  }
  return p;
}

// A head's rows rotated by transformers' tables: x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1].
inline Mat rotary(const Mat& x, const Matrix<double>& cos, const Matrix<double>& sin) {
  const Eigen::Index d = x.cols(), half = d / 2;
  Mat y(x.rows(), d);
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < d; ++j)
      y(i, j) = x(i, j) * cos(int(i), int(j)) + (j < half ? -x(i, j + half) : x(i, j - half)) * sin(int(i), int(j));
  return y;
}

inline double activation(Activation a, double x) {
  switch (a) {
    case Activation::relu: return std::max(x, 0.0);
    case Activation::silu: return x / (1.0 + std::exp(-x));
    case Activation::gelu: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::gelu_tanh: {
      const double z = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
      return x / (1.0 + std::exp(-2.0 * z));  // 0.5 (1 + tanh z) = logistic(2z)
    }
  }
  return x;
}

inline Mat linear(const Mat& x, const Matrix<double>& w, const std::vector<double>& b) {
  Mat y = x * to_eigen(w);
  if (!b.empty()) y.rowwise() += to_eigen(b);
  return y;
}

inline Mat attention(const ModelConfig& cfg, const LayerWeights<double>& w, const Mat& h) {
  const Mat q = linear(h, w.wq, w.bq), k = linear(h, w.wk, w.bk), v = linear(h, w.wv, w.bv);
  const int dh = cfg.head_width();
  Mat heads(h.rows(), cfg.width);
  for (int a = 0; a < cfg.heads; ++a) {
    const Mat s = q.middleCols(a * dh, dh) * k.middleCols(a * dh, dh).transpose() / std::sqrt(double(dh));
    heads.middleCols(a * dh, dh) = softmax(s, cfg.causal) * v.middleCols(a * dh, dh);
  }
  return linear(heads, w.wo, w.bo);
}

inline Mat feed_forward(const ModelConfig& cfg, const LayerWeights<double>& w, const Mat& h) {
  Mat u = linear(h, w.w1, w.b1);
  u = u.unaryExpr([&](double x) { return activation(cfg.activation, x); });
  return linear(u, w.w2, w.b2);
}

inline Mat embed(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  if (cfg.embedding == Embedding::none) return to_eigen(in.x);
  Mat x(cfg.tokens, cfg.width);
  if (cfg.embedding == Embedding::tokens) {
    for (int t = 0; t < cfg.tokens; ++t) x.row(t) = to_eigen(w.wte).row(in.ids[t]);
  } else {
    const Mat e = linear(to_eigen(in.x), w.patch_w, w.patch_b);
    const int first = cfg.class_token ? 1 : 0;
    if (cfg.class_token) x.row(0) = to_eigen(w.cls);
    x.bottomRows(e.rows()) = e;
    (void)first;
  }
  return x + to_eigen(w.pos);
}

// Block outputs of every layer.
inline std::vector<Mat> forward(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  const bool rms = cfg.norm == NormKind::rmsnorm;
  Mat x = embed(cfg, w, in);
  std::vector<Mat> blocks;
  for (const auto& l : w.layers) {
    if (cfg.position == NormPosition::pre) {
      x = x + attention(cfg, l, layer_norm(x, l.norm1, cfg.norm_eps, rms));
      x = x + feed_forward(cfg, l, layer_norm(x, l.norm2, cfg.norm_eps, rms));
    } else {
      x = layer_norm(x + attention(cfg, l, x), l.norm1, cfg.norm_eps, rms);
      x = layer_norm(x + feed_forward(cfg, l, x), l.norm2, cfg.norm_eps, rms);
    }
    blocks.push_back(x);
  }
  return blocks;
}

inline double rel_diff(const Mat& a, const Mat& b) { return (a - b).norm() / b.norm(); }

}  // namespace lpsim::test
