#include "emulated_gemm.hpp"

#include <cuda_runtime.h>

#include <vector>

#include "cuda_check.hpp"
#include "lpsim/accum/dot_kernel.hpp"

namespace lpsim::cuda {

namespace {

// ---- the exact kernel: one thread per output element, dot_kernel.hpp as the CPU runs it ----
// A warp takes 32 consecutive columns of one row: its B reads are coalesced, its A reads one broadcast.
template <Rounding R>
__global__ void exact_kernel(accum::DotPolicy p, int m, int n, int k, const double* a, const double* b, double* c,
                             StochasticStream sr) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= m || j >= n) return;
  const SrSlots slots(sr, std::uint64_t(i) * n + j, k);
  c[std::size_t(i) * n + j] = accum::DotKernel<R>(p, a + std::size_t(i) * k, b + j, n, k, slots).run();
}

// ---- the fp32 kernel: binary32 accumulation in float arithmetic, each output's steps in order along K ----
struct FloatPlan {
  bool rounded_products;  // s = fadd(s, fmul(a, b)); else s = fmaf(a, b, s) (one rounding of the exact s + a*b)
  int chunk;              // the order's chunk length: chunk sums are added in binary32
  bool output_is_fp32;
  RoundParams<double> output;
  Rounding output_rounding;
};

constexpr int tile = 64, tile_k = 16, per_thread = 4;  // 64 x 64 outputs per block, 16 x 16 threads of 4 x 4

__global__ void fp32_kernel(FloatPlan p, int m, int n, int k, const float* a, const float* b, float* c) {
  __shared__ float as[tile_k][tile], bs[tile_k][tile];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.y * tile, col0 = blockIdx.x * tile;
  float part[per_thread][per_thread], total[per_thread][per_thread];
  for (int r = 0; r < per_thread; ++r)
    for (int q = 0; q < per_thread; ++q) part[r][q] = total[r][q] = 0.0f;
  for (int t0 = 0; t0 < k; t0 += tile_k) {
    for (int e = threadIdx.x; e < tile * tile_k; e += blockDim.x) {  // zeros outside the matrices are never used
      const int ar = e / tile_k, at = e % tile_k, bt = e / tile, bc = e % tile;
      as[at][ar] = row0 + ar < m && t0 + at < k ? a[std::size_t(row0 + ar) * k + t0 + at] : 0.0f;
      bs[bt][bc] = t0 + bt < k && col0 + bc < n ? b[std::size_t(t0 + bt) * n + col0 + bc] : 0.0f;
    }
    __syncthreads();
    const int steps = min(tile_k, k - t0);
    for (int tt = 0; tt < steps; ++tt) {
      const int t = t0 + tt;
      const bool chunk_start = t % p.chunk == 0;
      float av[per_thread], bv[per_thread];
      for (int r = 0; r < per_thread; ++r) av[r] = as[tt][ty + 16 * r];
      for (int q = 0; q < per_thread; ++q) bv[q] = bs[tt][tx + 16 * q];
      for (int r = 0; r < per_thread; ++r)
        for (int q = 0; q < per_thread; ++q) {
          if (chunk_start && t > 0) total[r][q] = t == p.chunk ? part[r][q] : __fadd_rn(total[r][q], part[r][q]);
          const float prod = __fmul_rn(av[r], bv[q]);
          part[r][q] = chunk_start ? prod
                       : p.rounded_products ? __fadd_rn(part[r][q], prod)
                                            : __fmaf_rn(av[r], bv[q], part[r][q]);
        }
    }
    __syncthreads();
  }
  for (int r = 0; r < per_thread; ++r)
    for (int q = 0; q < per_thread; ++q) {
      const int i = row0 + ty + 16 * r, j = col0 + tx + 16 * q;
      if (i >= m || j >= n) continue;
      const float s = k <= p.chunk ? part[r][q] : __fadd_rn(total[r][q], part[r][q]);
      c[std::size_t(i) * n + j] =
          p.output_is_fp32 ? s : float(accum::round_with(double(s), p.output, p.output_rounding, 0));
    }
}

bool is_fp32(const std::optional<Format>& f) { return f && f->spec == formats::fp32; }

template <class T>
T* grow(void*& p, std::size_t& capacity, std::size_t count) {
  const std::size_t bytes = std::max<std::size_t>(count, 1) * sizeof(T);
  if (bytes > capacity) {
    if (p) check(cudaFree(p), "cudaFree");
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    capacity = bytes;
  }
  return static_cast<T*>(p);
}

template <class T>
void to_device(T* d, std::span<const T> h) {
  check(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "copy to device");
}
template <class T>
void to_host(std::span<T> h, const T* d) {
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpy(h.data(), d, h.size() * sizeof(T), cudaMemcpyDeviceToHost), "copy to host");
}

}  // namespace

std::string_view kernel_name(DeviceKernel k) {
  switch (k) {
    case DeviceKernel::none: return "cpu";
    case DeviceKernel::fp32_fma: return "gpu fp32";
    case DeviceKernel::exact: return "gpu exact";
  }
  return "?";
}

DeviceKernel device_kernel(const AccumPolicy& p) {
  if (gemm_path(p, Isa::portable, false) == GemmPath::reference) return DeviceKernel::none;
  const bool floats = carrier_holds<float>(p.input.spec) && carrier_holds<float>(p.output.spec);
  const bool plain_products = !p.product || (is_fp32(p.product) && p.product_rounding == Rounding::nearest_even);
  if (floats && is_fp32(p.acc) && p.acc_rounding == Rounding::nearest_even && p.tc.k == 0 &&
      p.order != Order::pairwise && plain_products && p.output_rounding != Rounding::stochastic)
    return DeviceKernel::fp32_fma;
  return DeviceKernel::exact;
}

struct EmulatedGemm::Buffers {
  void* a = nullptr;
  void* b = nullptr;
  void* c = nullptr;
  std::size_t a_bytes = 0, b_bytes = 0, c_bytes = 0;
  ~Buffers() {
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
};

// The exact kernel's pairwise order recurses (depth log2 k): its stack is sized here, as the compiler cannot.
EmulatedGemm::EmulatedGemm() : buffers_(std::make_unique<Buffers>()) {
  check(cudaDeviceSetLimit(cudaLimitStackSize, 16384), "cudaDeviceSetLimit(stack)");
}
EmulatedGemm::~EmulatedGemm() = default;

bool EmulatedGemm::gemm(const AccumPolicy& p, int m, int n, int k, std::span<const float> a, std::span<const float> b,
                        std::span<float> c, const StochasticStream& sr) {
  const DeviceKernel kernel = device_kernel(p);
  if (kernel == DeviceKernel::none) return false;
  if (kernel == DeviceKernel::exact) {  // in double, as the CPU's portable kernel
    std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(c.size());
    gemm(p, m, n, k, ad, bd, cd, sr);
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = float(cd[i]);
    return true;
  }
  ++calls_;
  if (m == 0 || n == 0) return true;
  Buffers& d = *buffers_;
  float* da = grow<float>(d.a, d.a_bytes, a.size());
  float* db = grow<float>(d.b, d.b_bytes, b.size());
  float* dc = grow<float>(d.c, d.c_bytes, c.size());
  to_device(da, a);
  to_device(db, b);
  FloatPlan fp{p.product.has_value(), p.chunk_length(k), p.output.spec == formats::fp32 &&
               p.output_rounding == Rounding::nearest_even, make_round_params<double>(p.output.spec), p.output_rounding};
  const dim3 grid((n + tile - 1) / tile, (m + tile - 1) / tile);
  fp32_kernel<<<grid, 256>>>(fp, m, n, k, da, db, dc);
  to_host(c, dc);
  return true;
}

bool EmulatedGemm::gemm(const AccumPolicy& p, int m, int n, int k, std::span<const double> a,
                        std::span<const double> b, std::span<double> c, const StochasticStream& sr) {
  const DeviceKernel kernel = device_kernel(p);
  if (kernel == DeviceKernel::none) return false;
  if (kernel == DeviceKernel::fp32_fma) {  // operands and output are floats (the input format fits one)
    std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), cf(c.size());
    gemm(p, m, n, k, af, bf, cf, sr);
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = cf[i];
    return true;
  }
  ++calls_;
  if (m == 0 || n == 0) return true;
  Buffers& d = *buffers_;
  double* da = grow<double>(d.a, d.a_bytes, a.size());
  double* db = grow<double>(d.b, d.b_bytes, b.size());
  double* dc = grow<double>(d.c, d.c_bytes, c.size());
  to_device(da, a);
  to_device(db, b);
  const accum::DotPolicy dp = accum::make_dot_policy(p);
  const dim3 block(32, 4), grid((n + 31) / 32, (m + 3) / 4);
  with_rounding(p.acc_rounding, [&]<Rounding R>() { exact_kernel<R><<<grid, block>>>(dp, m, n, k, da, db, dc, sr); });
  to_host(c, dc);
  return true;
}

}  // namespace lpsim::cuda
