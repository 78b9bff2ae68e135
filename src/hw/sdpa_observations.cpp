#include "lpsim/hw/sdpa_observations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/layers.hpp"
#include "lpsim/model/safetensors.hpp"

namespace lpsim {

namespace {

// Head h of a heads x tokens x d tensor.
Matrix<double> head_of(const Tensor& t, int h) {
  const int n = int(t.shape[1]), d = int(t.shape[2]);
  Matrix<double> m(n, d);
  std::copy_n(t.values.begin() + std::size_t(h) * n * d, std::size_t(n) * d, m.data.begin());
  return m;
}

// softmax(q k^T / sqrt(d)) v in double: exact to ~1e-16, far below the half-precision errors compared here.
Matrix<double> exact_attention(const Matrix<double>& q, const Matrix<double>& k, const Matrix<double>& v, bool causal) {
  const int n = q.rows, d = q.cols;
  Matrix<double> o(n, v.cols, 0.0);
  std::vector<double> s(k.rows);
  for (int i = 0; i < n; ++i) {
    const int valid = causal ? i + 1 : k.rows;
    double top = -INFINITY, z = 0;
    for (int j = 0; j < valid; ++j) {
      double dotp = 0;
      for (int c = 0; c < d; ++c) dotp += q(i, c) * k(j, c);
      s[j] = dotp / std::sqrt(double(d));
      top = std::max(top, s[j]);
    }
    for (int j = 0; j < valid; ++j) z += s[j] = std::exp(s[j] - top);
    for (int j = 0; j < valid; ++j)
      for (int c = 0; c < v.cols; ++c) o(i, c) += s[j] / z * v(j, c);
  }
  return o;
}

}  // namespace

std::vector<SdpaComparison> compare_sdpa_observations(const std::string& dir, const AttentionKernel& kernel) {
  const std::string tensors = dir + "/tensors";
  if (!std::filesystem::is_directory(tensors)) throw ConfigError(fmt::format("{}: no such directory", tensors));
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(tensors))
    if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  const std::regex name(R"((fp16|bf16)-d(\d+)-n(\d+)-(causal|full)\.safetensors)");
  std::vector<SdpaComparison> out;
  for (const std::string& file : files) {
    std::smatch m;
    const std::string base = std::filesystem::path(file).filename().string();
    if (!std::regex_match(base, m, name))
      throw ConfigError(fmt::format("{}: the name is not <fp16|bf16>-d<d>-n<tokens>-<causal|full>.safetensors", file));
    const auto t = read_safetensors(file);
    for (const char* key : {"q", "k", "v", "out_default"})
      if (!t.contains(key) || t.at(key).shape.size() != 3)
        throw ConfigError(fmt::format("{}: tensor '{}' (heads x tokens x d) is missing", file, key));
    PrecisionPlan plan = plan_preset(fmt::format("autocast-{}", m[1].str()));
    plan.attention = kernel;
    const bool causal = m[4] == "causal";
    const Tensor& q = t.at("q");
    const int heads = int(q.shape[0]);
    for (const char* output : {"out_default", "out_flash"}) {
      if (!t.contains(output)) continue;
      SdpaComparison c{base, output, m[1], heads, int(q.shape[1]), int(q.shape[2]), causal};
      double same = 0, total = 0, err_gpu = 0, err_emu = 0, norm = 0;
      for (int h = 0; h < heads; ++h) {
        EmulatedBackend be(plan);
        const Matrix<double> qh = head_of(q, h), kh = head_of(t.at("k"), h), vh = head_of(t.at("v"), h);
        const Matrix<double> gpu = head_of(t.at(output), h);
        const Matrix<double> exact = exact_attention(qh, kh, vh, causal);
        const Matrix<double> emu = kernel.kind == AttentionKernel::Kind::flash
                                       ? layers::flash_head(be, kernel, qh, kh, vh, causal)
                                       : [&] {  // math: the preset's stored scores and probabilities
                                           Matrix<double> s = be.gemm(Op::score, qh, transpose(kh), nullptr);
                                           layers::scale_scores(be, s, qh.cols);
                                           return be.gemm(Op::pv, layers::softmax(be, s, causal), vh, nullptr);
                                         }();
        for (std::size_t i = 0; i < gpu.size(); ++i) {
          same += gpu.data[i] == emu.data[i], ++total;
          err_gpu += (gpu.data[i] - exact.data[i]) * (gpu.data[i] - exact.data[i]);
          err_emu += (emu.data[i] - exact.data[i]) * (emu.data[i] - exact.data[i]);
          norm += exact.data[i] * exact.data[i];
        }
      }
      c.same_bits = same / total, c.observed = std::sqrt(err_gpu / norm), c.predicted = std::sqrt(err_emu / norm);
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace lpsim
