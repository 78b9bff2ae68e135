#include "lpsim/emulation/kv_cache_store.hpp"

#include <algorithm>
#include <cmath>

#include "lpsim/format/block_scale.hpp"

namespace lpsim {

namespace {

double f32(double x) { return double(float(x)); }

double largest_finite(const Matrix<double>& m) {
  double a = 0;
  for (double v : m.data)
    if (std::isfinite(v)) a = std::max(a, std::fabs(v));
  return a;
}

}  // namespace

double kv_cache_scale(const KvCache& cache, double amax) {
  if (cache.scale == KvCache::Scale::fixed) return cache.fixed_scale;
  return amax > 0 ? f32(f32(amax) / cache.format->spec.max_finite()) : 1.0;
}

long kv_cache_roundtrip(const KvCache& cache, std::vector<Matrix<double>>& heads,
                        const std::function<double(double)>& read) {
  if (!cache.active() || heads.empty()) return 0;
  long saturated = 0;
  if (cache.format) {
    double tensor_amax = 0;
    for (const Matrix<double>& h : heads) tensor_amax = std::max(tensor_amax, largest_finite(h));
    for (Matrix<double>& h : heads) {
      const double s = kv_cache_scale(cache, cache.scale == KvCache::Scale::head ? largest_finite(h) : tensor_amax);
      for (double& v : h.data) v = read(f32(saturating_element(f32(v / s), cache.format->spec, saturated) * s));
    }
    return saturated;
  }
  // Block scheme: the heads side by side, so that a per-tensor scale (nvfp4) covers the layer as one tensor.
  const int rows = heads[0].rows, dh = heads[0].cols, n = int(heads.size());
  std::vector<double> all(std::size_t(rows) * dh * n);
  for (int g = 0; g < n; ++g)
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < dh; ++c) all[(std::size_t(r) * n + g) * dh + c] = heads[g](r, c);
  const BlockQuantized q = quantize_blocks(*cache.blocks, all, rows, dh * n, 1);
  for (int g = 0; g < n; ++g)
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < dh; ++c) heads[g](r, c) = read(f32(q.value(r, g * dh + c)));
  return q.saturated;
}

}  // namespace lpsim
