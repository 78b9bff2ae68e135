// Seeded weights (the spectral controls do what they say, checked by SVD) and safetensors files (round trips,
// Hugging Face names, and clear errors for broken files).
#include <gtest/gtest.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "support/eigen_transformer.hpp"

namespace lpsim {
namespace {

Eigen::VectorXd singular_values(const Eigen::MatrixXd& m) { return Eigen::JacobiSVD<Eigen::MatrixXd>(m).singularValues(); }

TEST(Init, SpectralControlsHold) {
  ModelConfig c;
  c.width = 32, c.heads = 2, c.ffn = 64, c.depth = 2, c.tokens = 4;
  c.init.kappa_qk = 1000, c.init.kappa_v = 50, c.init.logit_scale = 2.5;
  const Weights<double> w = make_weights(c, 9);
  const int dh = c.head_width();
  for (const auto& l : w.layers)
    for (int h = 0; h < c.heads; ++h) {
      const Eigen::MatrixXd q = test::to_eigen(l.wq).middleCols(h * dh, dh), k = test::to_eigen(l.wk).middleCols(h * dh, dh);
      const Eigen::VectorXd s = singular_values(q * k.transpose());
      EXPECT_NEAR(s(0) / s(dh - 1) / 1000, 1.0, 1e-3);          // rank d_head: the condition on its range
      EXPECT_LT(s(dh) / s(0), 1e-6);
      EXPECT_NEAR(s(0) / std::sqrt(double(dh)) / 2.5, 1.0, 1e-5);  // fp32 storage moves it a little
      const Eigen::VectorXd sv = singular_values(test::to_eigen(l.wv).middleCols(h * dh, dh));
      EXPECT_NEAR(sv(0) / sv(dh - 1) / 50, 1.0, 1e-4);
    }
}

TEST(Init, SeededStorageRoundedAndReproducible) {
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 32, c.depth = 1, c.tokens = 3;
  c.init.storage = "bf16";
  const Weights<double> a = make_weights(c, 1), b = make_weights(c, 1), other = make_weights(c, 2);
  EXPECT_EQ(a.layers[0].wq.data, b.layers[0].wq.data);
  EXPECT_NE(a.layers[0].wq.data, other.layers[0].wq.data);
  for (double v : a.layers[0].w1.data) ASSERT_TRUE(representable(v, formats::bf16));
  for (double v : make_input(c, 1).x.data) ASSERT_TRUE(representable(v, formats::bf16));
  EXPECT_NE(make_input(c, 1, 0).x.data, make_input(c, 1, 1).x.data);  // batches differ
}

// Per process: ctest runs tests in parallel processes, and other builds (sanitizer) may run the same test at once.
std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lpsim_weights_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void expect_same(const Weights<double>& a, const Weights<double>& b) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const auto &x = a.layers[l], &y = b.layers[l];
    EXPECT_EQ(x.wq.data, y.wq.data);
    EXPECT_EQ(x.wk.data, y.wk.data);
    EXPECT_EQ(x.wv.data, y.wv.data);
    EXPECT_EQ(x.wo.data, y.wo.data);
    EXPECT_EQ(x.w1.data, y.w1.data);
    EXPECT_EQ(x.w2.data, y.w2.data);
    EXPECT_EQ(x.bq, y.bq);
    EXPECT_EQ(x.bk, y.bk);
    EXPECT_EQ(x.bv, y.bv);
    EXPECT_EQ(x.bo, y.bo);
    EXPECT_EQ(x.b1, y.b1);
    EXPECT_EQ(x.b2, y.b2);
    EXPECT_EQ(x.norm1.gamma, y.norm1.gamma);
    EXPECT_EQ(x.norm1.beta, y.norm1.beta);
    EXPECT_EQ(x.norm2.gamma, y.norm2.gamma);
    EXPECT_EQ(x.norm2.beta, y.norm2.beta);
  }
  EXPECT_EQ(a.patch_w.data, b.patch_w.data);
    EXPECT_EQ(a.patch_b, b.patch_b);
    EXPECT_EQ(a.cls, b.cls);
  EXPECT_EQ(a.pos.data, b.pos.data);
    EXPECT_EQ(a.wte.data, b.wte.data);
}

TEST(Safetensors, RoundTripsGpt2AndVitNames) {
  ModelConfig vit;
  vit.width = 8, vit.heads = 2, vit.ffn = 12, vit.depth = 2, vit.embedding = Embedding::patch;
  vit.image = 4, vit.patch = 2, vit.channels = 3, vit.tokens = 5, vit.init.bias_std = 0.1;
  ModelConfig gpt = vit;
  gpt.arch = "gpt2", gpt.embedding = Embedding::tokens, gpt.vocab = 20, gpt.tokens = 6;
  ModelConfig plain = gpt;
  plain.arch = "decoder002", plain.embedding = Embedding::none, plain.bias = false, plain.norm = NormKind::rmsnorm;
  for (const ModelConfig& c : {vit, gpt, plain})
    for (const char* dtype : {"F32", "F64"}) {
      const Weights<double> w = make_weights(c, 4);
      const std::string path = temp_path(c.arch + dtype + ".safetensors");
      save_safetensors_weights(path, c, w, dtype);
      expect_same(load_safetensors_weights(path, c), w);
    }
  // Names as Hugging Face writes them, including the model-class prefix.
  const auto t = read_safetensors(temp_path("encoderF32.safetensors"));
  EXPECT_EQ(t.at("encoder.layer.1.attention.attention.query.weight").shape, (std::vector<std::int64_t>{8, 8}));
  EXPECT_EQ(t.at("embeddings.patch_embeddings.projection.weight").shape, (std::vector<std::int64_t>{8, 3, 2, 2}));
  const auto g = read_safetensors(temp_path("gpt2F32.safetensors"));
  EXPECT_EQ(g.at("h.0.attn.c_attn.weight").shape, (std::vector<std::int64_t>{8, 24}));
  std::map<std::string, Tensor> prefixed;
  for (const auto& [k, v] : g) prefixed["transformer." + k] = v;
  write_safetensors(temp_path("prefixed.safetensors"), prefixed);
  expect_same(load_safetensors_weights(temp_path("prefixed.safetensors"), gpt), make_weights(gpt, 4));
}

TEST(Safetensors, HalfPrecisionValuesDecodeExactly) {
  std::map<std::string, Tensor> t;
  t["x"] = Tensor{"F16", {4}, {1.0, -65504.0, 0x1p-24, 0.333251953125}};
  const double big = round_to(3.0e38, formats::bf16, Rounding::nearest_even);
  t["y"] = Tensor{"BF16", {2}, {big, -0x1p-133}};
  write_safetensors(temp_path("half.safetensors"), t);
  const auto r = read_safetensors(temp_path("half.safetensors"));
  EXPECT_EQ(r.at("x").values, t["x"].values);
  EXPECT_EQ(r.at("y").values, (std::vector<double>{big, -0x1p-133}));
  t["z"] = Tensor{"F16", {1}, {0.1}};  // not a half value: refused, never rounded silently
  EXPECT_THROW(write_safetensors(temp_path("bad.safetensors"), t), ConfigError);
}

std::string error_reading(const std::string& bytes) {
  const std::string path = temp_path("broken.safetensors");
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    read_safetensors(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string with_header(const std::string& json, const std::string& data) {
  std::string s(8, '\0');
  for (int b = 0; b < 8; ++b) s[b] = char((json.size() >> (8 * b)) & 0xff);
  return s + json + data;
}

TEST(Safetensors, BrokenFilesGiveClearErrors) {
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NE(error_reading("abc").find("truncated: 3 bytes"), std::string::npos);
  EXPECT_NE(error_reading(with_header(good, "1234").substr(0, 20)).find("truncated: the header says"), std::string::npos);
  EXPECT_NE(error_reading(with_header(good, "1234")).find("tensor 'a': data_offsets [0, 8] lie outside the 4 data bytes"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header("{\"a\": [1,", "")).find("the JSON header does not parse"), std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"I7","shape":[1],"data_offsets":[0,1]}})", "x"))
                .find("dtype 'I7' is not supported"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"))
                .find("8 bytes for shape [3] of F32 (12 expected)"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[2]}})", "12345678")).find("needs dtype, shape and data_offsets"),
            std::string::npos);
  EXPECT_EQ(error_reading(with_header(good, "12345678")), "");
}

// The tensors must tile the data exactly, keys be unique and shapes whole numbers (issue 21's cases).
TEST(Safetensors, StructureIsValidatedFully) {
  const std::string two = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_EQ(error_reading(with_header(two, "12345678")), "");
  // A header length one byte short: the last header byte becomes data, every tensor would be read one byte off.
  std::string short_len = with_header(two + " ", "12345678");
  short_len[0] = char(short_len[0] - 1);
  EXPECT_NE(error_reading(short_len).find("the tensors cover 8 of the 9 data bytes"), std::string::npos)
      << error_reading(short_len);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", "123456"))
                .find("tensor 'b' overlaps"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}})", "1234567890"))
                .find("2 bytes before tensor 'b' belong to no tensor"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", "12345678"))
                .find("not a whole number"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "12345678"))
                .find("tensor 'a' appears twice"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[4611686018427387904, 4],"data_offsets":[0,8]}})", "12345678"))
                .find("more elements than any file can hold"),
            std::string::npos);
  EXPECT_NE(error_reading(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0.5,8]}})", "12345678"))
                .find("must be two whole numbers"),
            std::string::npos);
}

TEST(Safetensors, ShapeAndNameMismatchesNameTheTensor) {
  ModelConfig c;
  c.width = 8, c.heads = 2, c.ffn = 12, c.depth = 1, c.tokens = 3, c.arch = "gpt2";
  const std::string path = temp_path("small.safetensors");
  save_safetensors_weights(path, c, make_weights(c, 1));
  ModelConfig wider = c;
  wider.width = 16;
  try {
    load_safetensors_weights(path, wider);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'h.0.attn.c_attn.weight' has shape [8, 24], the model needs [16, 48]"),
              std::string::npos)
        << e.what();
  }
  ModelConfig deeper = c;
  deeper.depth = 2;
  try {
    load_safetensors_weights(path, deeper);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'h.1.attn.c_attn.weight' is missing"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lpsim
