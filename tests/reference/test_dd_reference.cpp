// The double-double reference against MPFR: its GEMM within the Dot2 bound (also where the sum cancels), its erf,
// whole forwards of every shipped architecture against a 256-bit MPFR forward, studies that measure the same errors
// as with the MPFR reference, and a sampled check that sees an error when there is one.
#include <gtest/gtest.h>
#include <mpfr.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim {
namespace {

using Big = boost::multiprecision::number<boost::multiprecision::mpfr_float_backend<80>, boost::multiprecision::et_off>;
Big big(const DD& v) { return Big(v.x[0]) + Big(v.x[1]); }
double diff(const DD& v, const Big& want) { return std::fabs(Big(big(v) - want).convert_to<double>()); }

// A with double-double entries (hi and a lo of the hi's last bits), B as doubles or double-doubles; half the rows
// of A are built so that row i of A B cancels to about 1e-12 of sum |a b| in column 0.
Matrix<DD> random_dd(int r, int c, std::mt19937_64& g) {
  std::normal_distribution<double> n;
  Matrix<DD> m(r, c);
  for (DD& v : m.data) {
    const double hi = n(g);
    v = DD::add(hi, hi * 0x1p-54 * n(g));
  }
  return m;
}

TEST(DdReference, GemmWithinTheDot2BoundAgainstMpfr) {
  std::mt19937_64 g(7);
  for (int k : {1, 7, 64, 257, 1000, 3000}) {
    const int m = 6, n = 19;
    Matrix<DD> a = random_dd(m, k, g);
    const Matrix<DD> bd = random_dd(k, n, g);
    Matrix<double> b(k, n);
    for (std::size_t i = 0; i < b.size(); ++i) b.data[i] = bd.data[i].x[0];
    // Rows 0-2 cancel: a(i, k-1) chosen so that column 0's exact sum is tiny.
    for (int i = 0; i < 3 && k > 1; ++i) {
      Big partial(0);
      for (int l = 0; l + 1 < k; ++l) partial += big(a(i, l)) * b(l, 0);
      const Big want = Big(1e-12) - partial;
      a(i, k - 1) = DD(double(Big(want / b(k - 1, 0)).convert_to<double>()));
    }
    std::vector<double> bias(n);
    for (double& v : bias) v = std::ldexp(double(g() % 1000) - 500, -8);
    const Matrix<DD> c1 = dd_gemm(a, b, &bias), c2 = dd_gemm(a, bd);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        Big e1(bias[j]), e2(0);
        double scale1 = std::fabs(bias[j]), scale2 = 0;
        for (int l = 0; l < k; ++l) {
          e1 += big(a(i, l)) * b(l, j), e2 += big(a(i, l)) * big(bd(l, j));
          scale1 += std::fabs(a(i, l).x[0] * b(l, j)), scale2 += std::fabs(a(i, l).x[0] * bd(l, j).x[0]);
        }
        // Dot2's bound: u |s| + gamma_{k}^2 sum |a b| (u = 2^-53), with 4x room for the low-part products.
        const double u = 0x1p-53, g2 = std::pow(k * u / (1 - k * u), 2);
        EXPECT_LE(diff(c1(i, j), e1), 2 * 0x1p-106 * std::fabs(e1.convert_to<double>()) + 4 * g2 * scale1 + 1e-300)
            << "k " << k << " entry " << i << "," << j;
        EXPECT_LE(diff(c2(i, j), e2), 2 * 0x1p-106 * std::fabs(e2.convert_to<double>()) + 4 * g2 * scale2 + 1e-300)
            << "k " << k << " entry " << i << "," << j << " (double-double B)";
      }
  }
}

TEST(DdReference, GemmBitsDoNotDependOnThreads) {
  std::mt19937_64 g(3);
  const Matrix<DD> a = random_dd(37, 300, g), b = random_dd(300, 45, g);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const Matrix<DD> one = dd_gemm(a, b);
  omp_set_num_threads(std::max(2, before));
  const Matrix<DD> many = dd_gemm(a, b);
  omp_set_num_threads(before);
  for (std::size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one.data[i].x[0], many.data[i].x[0]);
    EXPECT_EQ(one.data[i].x[1], many.data[i].x[1]);
  }
}

TEST(DdReference, ErfAgainstMpfr) {
  for (double x = -12; x <= 12; x += 0.0371) {
    const DD v = DD::add(x, x * 0x1p-60);
    Big want;
    mpfr_erf(want.backend().data(), big(v).backend().data(), MPFR_RNDN);
    // Conditioning of the e^{-x^2} factor: x^2 rounded to 2^-104 relative moves it by 2 x^2 2^-104.
    EXPECT_LE(diff(erf(v), want), (4 + 2 * x * x) * 0x1p-104 * std::max(1e-300, std::fabs(want.convert_to<double>()))) << x;
  }
  EXPECT_EQ(erf(DD(0.0)).x[0], 0.0);
}

// Every shipped architecture: the double-double forward against MPFR at 256 bits, tap by tap.
TEST(DdReference, ForwardsAgreeWithMpfrOnEveryArchitecture) {
  for (const char* name : {"tiny", "tiny-vit", "gpt2-tiny", "llama-tiny", "post-ln", "decoder002", "encoder"}) {
    const ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/" + name + ".toml");
    const Weights<double> w = make_weights(cfg, 1);
    const ModelInput<double> in = make_input(cfg, 1);
    SampledCheck sampled;
    const Taps<DD> dd = dd_taps(cfg, w, in, 1, &sampled);
    const Taps<Real> mp = reference_taps(256, cfg, w, in);
    ASSERT_EQ(dd.size(), mp.size()) << name;
    ReferenceCheck c;
    compare_references(c, dd, mp);
    EXPECT_LT(c.fro_rel, 1e-27) << name;
    EXPECT_GT(sampled.gemm_samples, 0) << name;
    EXPECT_LT(sampled.worst(), 1e-26) << name;
  }
  set_reference_bits(128);
}

TEST(DdReference, StudyMeasuresWhatTheMpfrStudyMeasures) {
  const ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/llama-tiny.toml");
  for (const char* plan : {"autocast-bf16", "fp32", "pure-fp16"}) {
    StudyOptions o;
    o.reference = "mpfr", o.check_reference = false;
    const StudyResult m = run_study(cfg, plan_preset(plan), o);
    o.reference = "dd", o.check_reference = true;
    const StudyResult d = run_study(cfg, plan_preset(plan), o);
    ASSERT_EQ(m.taps.size(), d.taps.size());
    for (std::size_t t = 0; t < m.taps.size(); ++t) {
      EXPECT_NEAR(d.taps[t].rel_fro, m.taps[t].rel_fro, 1e-12 * m.taps[t].rel_fro) << plan << " tap " << t;
      if (m.taps[t].tap == Tap::logits) EXPECT_EQ(d.taps[t].top1, m.taps[t].top1) << plan;
    }
    EXPECT_TRUE(d.reference.adequate) << plan;
    EXPECT_GT(d.reference.amplification, 0.5) << plan;
  }
}

// The check is only worth something if it sees errors: a product, a norm and a softmax off by 1e-20.
TEST(DdReference, SampledCheckSeesAWrongResult) {
  const ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml");
  std::mt19937_64 g(11);
  const Matrix<DD> x = random_dd(8, 40, g);
  Matrix<double> w(40, 5);
  for (double& v : w.data) v = double(g() % 200) / 64 - 1.5;
  DdBackend be(cfg, 0, 400);
  Matrix<DD> c = be.linear(Op::qkv, x, w, nullptr);
  EXPECT_LT(be.check().gemm_error, 1e-29);
  for (DD& v : c.data) v *= DD(1.0) + DD(1e-20);
  be.check_linear(x, w, nullptr, c);
  EXPECT_GT(be.check().gemm_error, 1e-22);

  NormWeights<double> nw{std::vector<double>(40, 1.25), std::vector<double>(40, 0.5), -1};
  Matrix<DD> y = layers::norm(be, NormKind::layernorm, x, nw, 1e-5);
  EXPECT_LT(be.check().norm_error, 1e-28);
  for (DD& v : y.data) v += 1e-18;
  be.check_norm(NormKind::layernorm, x, nw, 1e-5, false, y);
  EXPECT_GT(be.check().norm_error, 1e-20);

  Matrix<DD> p = layers::softmax(be, x, true);
  EXPECT_LT(be.check().softmax_error, 1e-30);
  for (DD& v : p.data) v *= DD(1.0) + DD(1e-20);
  be.check_softmax(x, true, p);
  EXPECT_GT(be.check().softmax_error, 1e-22);
}

TEST(DdReference, AutoPicksMpfrForSmallModelsOnly) {
  const ModelConfig tiny = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny-vit.toml");
  EXPECT_EQ(choose_reference(tiny, "auto", 128, true), "mpfr") << forward_multiply_adds(tiny);
  EXPECT_EQ(choose_reference(tiny, "dd", 128, true), "dd");
  ModelConfig gpt2 = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/gpt2-tiny.toml");
  gpt2.width = 768, gpt2.heads = 12, gpt2.ffn = 3072, gpt2.depth = 12, gpt2.tokens = 128, gpt2.vocab = 50257;
  gpt2.lm_head = true;
  EXPECT_EQ(choose_reference(gpt2, "auto", 128, true), "dd");
  // GPT-2-small at 128 tokens: about 16.0e9 multiply-adds (85M block weights and the 38.6M LM head per token).
  EXPECT_NEAR(forward_multiply_adds(gpt2), 128.0 * (12 * 12 * 768.0 * 768 + 768.0 * 50257) + 12 * 2.0 * 128 * 128 * 768,
              1);
}

}  // namespace
}  // namespace lpsim
