// Every operation of the forward, and whole forwards of every architecture, against the independent Eigen
// implementation in tests/support/eigen_transformer.hpp (double), on random inputs; the MPFR reference
// against the same oracle.
#include <gtest/gtest.h>

#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/native_backend.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/reference/mpfr_backend.hpp"
#include "support/eigen_transformer.hpp"

namespace lpsim {
namespace {

using test::Mat;

ModelConfig small(std::string arch, NormKind norm, NormPosition pos, Activation act, bool causal) {
  ModelConfig c;
  c.arch = std::move(arch);
  c.width = 12, c.heads = 3, c.ffn = 20, c.depth = 3, c.tokens = 7;
  c.norm = norm, c.position = pos, c.activation = act, c.causal = causal;
  c.init.bias_std = 0.2, c.init.norm_gain = 1.3, c.init.norm_bias = -0.1;
  return c;
}

Matrix<double> random_matrix(int r, int c, std::uint64_t seed, double scale = 1.0) {
  Matrix<double> m(r, c);
  for (std::size_t i = 0; i < m.size(); ++i) m.data[i] = scale * normal_at(seed, 99, i);
  return m;
}

TEST(Layers, NormsMatchEigen) {
  NativeBackend<double> be;
  const Matrix<double> x = random_matrix(9, 16, 1, 3.0);
  NormWeights<double> w{as_vector(random_matrix(1, 16, 2).data), as_vector(random_matrix(1, 16, 3).data)};
  for (double eps : {1e-5, 1e-2}) {
    const Mat want = test::layer_norm(test::to_eigen(x), w, eps, false);
    EXPECT_LT(test::rel_diff(test::to_eigen(layers::norm(be, NormKind::layernorm, x, w, eps)), want), 1e-14);
    NormWeights<double> rw{w.gamma, {}};
    const Mat want_rms = test::layer_norm(test::to_eigen(x), rw, eps, true);
    EXPECT_LT(test::rel_diff(test::to_eigen(layers::norm(be, NormKind::rmsnorm, x, rw, eps)), want_rms), 1e-14);
  }
}

TEST(Layers, SoftmaxMatchesEigenWithAndWithoutMask) {
  NativeBackend<double> be;
  const Matrix<double> s = random_matrix(6, 6, 4, 5.0);
  for (bool causal : {false, true}) {
    const Matrix<double> p = layers::softmax(be, s, causal);
    EXPECT_LT(test::rel_diff(test::to_eigen(p), test::softmax(test::to_eigen(s), causal)), 1e-15);
    for (int i = 0; i < p.rows; ++i) {
      double sum = 0;
      for (int j = 0; j < p.cols; ++j) sum += p(i, j);
      EXPECT_NEAR(sum, 1.0, 1e-15);
      if (causal) EXPECT_EQ(p(i, p.cols - 1), i == p.rows - 1 ? p(i, p.cols - 1) : 0.0);
    }
  }
}

TEST(Layers, ActivationsMatchAlternativeFormulas) {
  for (Activation a : {Activation::gelu, Activation::gelu_tanh, Activation::relu})
    for (double x : {-6.0, -2.5, -1.0, -0.3, 0.0, 1e-3, 0.7, 1.0, 3.0, 8.0})
      EXPECT_NEAR(layers::activation(a, x), test::activation(a, x), 4e-16 * std::max(1.0, std::fabs(x)))
          << activation_name(a) << " at " << x;
}

TEST(Layers, AttentionAndFeedForwardMatchEigen) {
  for (bool causal : {false, true}) {
    ModelConfig c = small("encoder", NormKind::layernorm, NormPosition::pre, Activation::gelu, causal);
    const Weights<double> w = make_weights(c, 5);
    const Matrix<double> h = random_matrix(c.tokens, c.width, 6);
    NativeBackend<double> be;
    EXPECT_LT(test::rel_diff(test::to_eigen(layers::attention(be, c, w.layers[0], h)),
                             test::attention(c, w.layers[0], test::to_eigen(h))), 1e-14);
    EXPECT_LT(test::rel_diff(test::to_eigen(layers::feed_forward(be, c, w.layers[1], h)),
                             test::feed_forward(c, w.layers[1], test::to_eigen(h))), 1e-14);
  }
}

struct Arch {
  const char* name;
  ModelConfig cfg;
};

std::vector<Arch> architectures() {
  std::vector<Arch> v;
  v.push_back({"pre-LN encoder", small("encoder", NormKind::layernorm, NormPosition::pre, Activation::gelu, false)});
  v.push_back({"post-LN encoder", small("encoder", NormKind::layernorm, NormPosition::post, Activation::gelu, false)});
  v.push_back({"RMSNorm ReLU decoder", small("decoder002", NormKind::rmsnorm, NormPosition::pre, Activation::relu, true)});
  ModelConfig gpt = small("gpt2", NormKind::layernorm, NormPosition::pre, Activation::gelu_tanh, true);
  gpt.embedding = Embedding::tokens, gpt.vocab = 50, gpt.init.scheme = "gaussian", gpt.init.std = 0.3;
  v.push_back({"GPT-2 decoder with token embedding", gpt});
  ModelConfig vit = small("encoder", NormKind::layernorm, NormPosition::pre, Activation::gelu, false);
  vit.embedding = Embedding::patch, vit.image = 6, vit.patch = 2, vit.channels = 3, vit.tokens = 10;
  v.push_back({"ViT with patches and class token", vit});
  ModelConfig post_rms = small("encoder", NormKind::rmsnorm, NormPosition::post, Activation::gelu_tanh, false);
  v.push_back({"post-RMSNorm", post_rms});
  v.push_back({"models/tiny.toml (2 blocks, width 8)", load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml")});
  return v;
}

TEST(Forward, EveryArchitectureMatchesEigenInDoubleAndMpfr) {
  set_reference_bits(128);
  for (const Arch& a : architectures()) {
    const Weights<double> w = make_weights(a.cfg, 7);
    const ModelInput<double> in = make_input(a.cfg, 7);
    const std::vector<Mat> want = test::forward(a.cfg, w, in);
    NativeBackend<double> be;
    std::vector<Mat> got;
    forward(be, a.cfg, w, in, TapSink<double>([&](int, Tap t, const Matrix<double>& m) {
              if (t == Tap::block) got.push_back(test::to_eigen(m));
            }));
    MpfrBackend mp;
    std::vector<Mat> got_mpfr;
    forward(mp, a.cfg, convert_weights<Real>(w), convert_input<Real>(in), TapSink<Real>([&](int, Tap t, const Matrix<Real>& m) {
              if (t != Tap::block) return;
              Mat d(m.rows, m.cols);
              for (int i = 0; i < m.rows; ++i)
                for (int j = 0; j < m.cols; ++j) d(i, j) = m(i, j).convert_to<double>();
              got_mpfr.push_back(d);
            }));
    ASSERT_EQ(got.size(), want.size()) << a.name;
    for (std::size_t l = 0; l < want.size(); ++l) {
      EXPECT_LT(test::rel_diff(got[l], want[l]), 1e-13) << a.name << " layer " << l;
      EXPECT_LT(test::rel_diff(got_mpfr[l], want[l]), 1e-13) << a.name << " layer " << l << " (MPFR)";
    }
  }
}

// A tiny model (2 blocks, width 8) by hand-checkable facts: with zero attention and FFN weights the blocks are the
// identity (pre-LN), and with one head of width d and V = I the attention of a single token is W_O applied to its
// normalised input.
TEST(Forward, TinyModelIdentityCases) {
  ModelConfig c = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml");
  Weights<double> w = make_weights(c, 1);
  const ModelInput<double> in = make_input(c, 1);
  for (auto& l : w.layers) {
    std::fill(l.wo.data.begin(), l.wo.data.end(), 0.0), std::fill(l.w2.data.begin(), l.w2.data.end(), 0.0);
    std::fill(l.bo.begin(), l.bo.end(), 0.0), std::fill(l.b2.begin(), l.b2.end(), 0.0);
  }
  NativeBackend<double> be;
  const Matrix<double> out = forward(be, c, w, in);
  EXPECT_EQ(out.data, in.x.data);

  c.tokens = 1, c.heads = 1;
  Weights<double> v = make_weights(c, 2);
  const ModelInput<double> one = make_input(c, 2);
  auto& l = v.layers[0];
  std::fill(l.wv.data.begin(), l.wv.data.end(), 0.0);
  for (int i = 0; i < c.width; ++i) l.wv(i, i) = 1.0;
  std::fill(l.bv.begin(), l.bv.end(), 0.0);
  const Matrix<double> h = layers::norm(be, c.norm, one.x, l.norm1, c.norm_eps);
  const Matrix<double> a = layers::attention(be, c, l, h);  // softmax of one score is 1: output = h W_O + b_O
  for (int j = 0; j < c.width; ++j) {
    double want = l.bo[j];
    for (int i = 0; i < c.width; ++i) want += h(0, i) * l.wo(i, j);
    EXPECT_NEAR(a(0, j), want, 1e-14);
  }
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// The taps a TapSink sees (forward keeps one slot per kind of tap and reuses it) are the taps run_taps keeps (every
// one moved into a list): a slot reused while the forward still reads its value would make them differ.
TEST(Forward, TapsSeenInSlotsAreTheTapsKeptInAList) {
  for (const Arch& a : architectures()) {
    const Weights<double> w = make_weights(a.cfg, 11);
    const ModelInput<double> in = make_input(a.cfg, 11);
    EmulatedBackend seen_be(plan_preset("autocast-bf16"));
    std::vector<Matrix<double>> seen;
    const Matrix<double> result =
        forward(seen_be, a.cfg, w, in, TapSink<double>([&](int, Tap, const Matrix<double>& m) { seen.push_back(m); }));
    EmulatedBackend kept_be(plan_preset("autocast-bf16"));
    const Taps<double> kept = emulated_taps(kept_be, a.cfg, w, in);
    ASSERT_EQ(seen.size(), kept.size()) << a.name;
    for (std::size_t t = 0; t < kept.size(); ++t) EXPECT_EQ(seen[t].data, kept[t].data) << a.name << " tap " << t;
    EXPECT_EQ(result.data, seen.back().data) << a.name;  // forward returns its last tap
  }
}

// A model with no blocks, no final norm and no head: the forward returns its input (embedding none), and there are
// no taps to keep.
TEST(Forward, AModelWithoutBlocksReturnsItsInput) {
  ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml");
  cfg.depth = 0, cfg.final_norm = false, cfg.lm_head = false;
  ASSERT_EQ(cfg.embedding, Embedding::none);
  const Weights<double> w = make_weights(cfg, 3);
  const ModelInput<double> in = make_input(cfg, 3);
  NativeBackend<double> be;
  EXPECT_EQ(forward(be, cfg, w, in).data, in.x.data);
  EmulatedBackend emulated(plan_preset("fp32"));
  EXPECT_TRUE(emulated_taps(emulated, cfg, w, in).empty());
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// Slices check their ranges in every build: a head taken past a grouped-query key matrix is named, not read from
// outside the matrix (diag/bounds.cpp did that under GQA before it refused such models).
TEST(Matrix, SlicesOutsideTheMatrixAreRefused) {
  const Matrix<double> k(8, 32, 1.0);  // two key/value heads of width 16
  EXPECT_NO_THROW(columns(k, 16, 16));
  EXPECT_THROW(columns(k, 32, 16), std::out_of_range);  // the third head of four query heads
  EXPECT_THROW(columns(k, -1, 2), std::out_of_range);
  EXPECT_THROW(row_block(k, 4, 5), std::out_of_range);
  Matrix<double> out(8, 48);
  EXPECT_THROW(set_columns(out, 40, k), std::out_of_range);
  EXPECT_THROW(set_columns(out, 0, Matrix<double>(7, 8)), std::out_of_range);
#if defined(LPSIM_CHECK_BOUNDS)
  EXPECT_THROW(k(8, 0), std::out_of_range);
  EXPECT_THROW(k(0, 32), std::out_of_range);
#endif
}

}  // namespace
}  // namespace lpsim
