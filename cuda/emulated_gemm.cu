#include "emulated_gemm.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "cuda_check.hpp"
#include "device_slot.hpp"
#include "emulated_gemm_buffers.hpp"
#include "lpsim/accum/dot_kernel.hpp"

namespace lpsim::cuda {

namespace {

// ---- the exact kernel: one thread per output element, dot_kernel.hpp as the CPU runs it ----
// A warp takes 32 consecutive columns of one row: its B reads are coalesced, its A reads one broadcast. Policies
// that do not sum pairwise get a kernel without the recursion, so without a call stack (the tensor-core presets
// ran 1.4-2x faster so).
template <Rounding R, bool Pairwise>
__global__ void exact_kernel(accum::DotPolicy p, int m, int n, int k, const double* a, const double* b, double* c,
                             StochasticStream sr) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= m || j >= n) return;
  const SrSlots slots(sr, std::uint64_t(i) * n + j, k);
  c[std::size_t(i) * n + j] = accum::DotKernel<R>(p, a + std::size_t(i) * k, b + j, n, k, slots).template run<Pairwise>();
}

// ---- the fp32 kernel: binary32 accumulation in float arithmetic, each output's steps in order along K ----
struct FloatPlan {
  bool rounded_products;  // s = fadd(s, fmul(a, b)); else s = fmaf(a, b, s) (one rounding of the exact s + a*b)
  int chunk;              // the order's chunk length: chunk sums are added in binary32
  bool output_is_fp32;
  RoundParams<double> output;
  Rounding output_rounding;
};

// Product z of a batch (blockIdx.z): a_z = a + z * a, b_(z / group) = b + (z / group) * b, c_z = c + z * c
// (strides in elements): an attention layer's heads, query head z with key/value head z / group.
struct Batch {
  std::size_t a = 0, b = 0, c = 0;
  int group = 1;
  __device__ void select(const float*& pa, const float*& pb, float*& pc) const {
    const std::size_t z = blockIdx.z;
    pa += z * a, pb += z / group * b, pc += z * c;
  }
};

// Tiles of Tile x Tile outputs, 256 threads of Per x Per each (strided by 16, so that a warp's shared-memory reads
// are broadcasts or consecutive), K in steps of TileK with the next step's operands fetched into registers while
// this one's products run. Every output's operations are the CPU's, in the CPU's order along K, whatever the tile.
// Unchunked (sequential order, chunk >= k): s starts at -0, and fma(a, b, -0) = a*b rounded, -0 + x = x, so the
// first product needs no case of its own. Chunked: chunk sums start with the chunk's first product and are added
// in binary32 as they end.
template <int Tile, int Per, int TileK, bool Chunked, bool RoundedProducts>
__global__ void __launch_bounds__(256) fp32_kernel(FloatPlan p, int m, int n, int k, const float* a, const float* b,
                                                   float* c, Batch batch) {
  batch.select(a, b, c);
  constexpr int side = Tile / Per, loads = Tile * TileK / 256;
  static_assert(side * side == 256 && loads * 256 == Tile * TileK);
  __shared__ float as[TileK][Tile + 4];  // padded: the transposing stores below hit distinct banks
  __shared__ float bs[TileK][Tile];
  const int tx = threadIdx.x % side, ty = threadIdx.x / side;
  const int row0 = blockIdx.y * Tile, col0 = blockIdx.x * Tile;
  float part[Per][Per], total[Chunked ? Per : 1][Chunked ? Per : 1];
  for (int r = 0; r < Per; ++r)
    for (int q = 0; q < Per; ++q) part[r][q] = Chunked ? 0.0f : -0.0f;
  if constexpr (Chunked)
    for (int r = 0; r < Per; ++r)
      for (int q = 0; q < Per; ++q) total[r][q] = 0.0f;
  float ra[loads], rb[loads];
  auto fetch = [&](int t0) {  // zeros outside the matrices are never used
    for (int l = 0; l < loads; ++l) {
      const int e = threadIdx.x + 256 * l;
      const int ar = e / TileK, at = e % TileK, bt = e / Tile, bc = e % Tile;
      ra[l] = row0 + ar < m && t0 + at < k ? a[std::size_t(row0 + ar) * k + t0 + at] : 0.0f;
      rb[l] = t0 + bt < k && col0 + bc < n ? b[std::size_t(t0 + bt) * n + col0 + bc] : 0.0f;
    }
  };
  auto step = [&](int tt, int t) {
    float av[Per], bv[Per];
    for (int r = 0; r < Per; ++r) av[r] = as[tt][ty + side * r];
    for (int q = 0; q < Per; ++q) bv[q] = bs[tt][tx + side * q];
    if constexpr (Chunked) {
      const bool chunk_start = t % p.chunk == 0;
      for (int r = 0; r < Per; ++r)
        for (int q = 0; q < Per; ++q) {
          if (chunk_start && t > 0) total[r][q] = t == p.chunk ? part[r][q] : __fadd_rn(total[r][q], part[r][q]);
          const float prod = __fmul_rn(av[r], bv[q]);
          part[r][q] = chunk_start ? prod
                       : RoundedProducts ? __fadd_rn(part[r][q], prod)
                                         : __fmaf_rn(av[r], bv[q], part[r][q]);
        }
    } else {
#pragma unroll
      for (int r = 0; r < Per; ++r)
#pragma unroll
        for (int q = 0; q < Per; ++q)
          part[r][q] = RoundedProducts ? __fadd_rn(part[r][q], __fmul_rn(av[r], bv[q]))
                                       : __fmaf_rn(av[r], bv[q], part[r][q]);
    }
  };
  fetch(0);
  for (int t0 = 0; t0 < k; t0 += TileK) {
    for (int l = 0; l < loads; ++l) {
      const int e = threadIdx.x + 256 * l;
      as[e % TileK][e / TileK] = ra[l];
      bs[e / Tile][e % Tile] = rb[l];
    }
    __syncthreads();
    if (t0 + TileK < k) fetch(t0 + TileK);
    const int steps = min(TileK, k - t0);
    if (steps == TileK) {
#pragma unroll
      for (int tt = 0; tt < TileK; ++tt) step(tt, t0 + tt);
    } else {
      for (int tt = 0; tt < steps; ++tt) step(tt, t0 + tt);
    }
    __syncthreads();
  }
  for (int r = 0; r < Per; ++r)
    for (int q = 0; q < Per; ++q) {
      const int i = row0 + ty + side * r, j = col0 + tx + side * q;
      if (i >= m || j >= n) continue;
      float s = k == 0 ? 0.0f : part[r][q];  // an empty sum is +0, as on the CPU
      if constexpr (Chunked) s = k <= p.chunk ? part[r][q] : __fadd_rn(total[r][q], part[r][q]);
      c[std::size_t(i) * n + j] =
          p.output_is_fp32 ? s : float(accum::round_with(double(s), p.output, p.output_rounding, 0));
    }
}

// The large tile where it still gives every multiprocessor of an H200 (132) a block and the outputs fill it; the
// small one otherwise (a head's P V, 1024 x 64 outputs, would leave most of them idle or half of each tile unused)
// and for chunked orders (their second set of sums spills the large tile's registers).
template <bool Chunked, bool RoundedProducts>
void launch_fp32(const FloatPlan& fp, int m, int n, int k, const float* a, const float* b, float* c, int count,
                 const Batch& batch) {
  auto grid = [&](int t) { return dim3((n + t - 1) / t, (m + t - 1) / t, count); };
  if constexpr (!Chunked)
    if (const dim3 g = grid(128); g.x * g.y * g.z >= 132 && m >= 128 && n >= 128) {
      fp32_kernel<128, 8, 8, false, RoundedProducts><<<g, 256>>>(fp, m, n, k, a, b, c, batch);
      return;
    }
  fp32_kernel<64, 4, 16, Chunked, RoundedProducts><<<grid(64), 256>>>(fp, m, n, k, a, b, c, batch);
}

// ---- the tensor-core kernel: the hardware-exact presets (tcexp=operands) in float and integer arithmetic ----
// What the CPU's AVX-512 tensor-core kernel does, one thread per output: products of <= 12-bit operands are exact
// floats; the alignment exponent is the largest e(a) + e(b) of a nonzero product (and e(c)); each term is scaled
// by 2^-quantum and cut to an integer, summed exactly in 64 bits, rescaled in double and rounded once. Steps with
// an infinite or NaN term, all terms zero, or exponents outside the range where float products stay exact take
// dot_kernel.hpp's step in double (tensor_core_step_over), the CPU's definition.
struct TensorPlan {
  accum::DotPolicy dot;      // for the steps in double and the output rounding
  int k_step, deal, chunk;   // tc.k, tc.deal, the order's chunk length
  int bits, emin;            // tc.bits, the alignment emin of the operands
  bool truncates;            // tcalign=trunc (else rne)
  Rounding step_rounding, acc_rounding;  // IEEE modes
  unsigned acc_mask;         // clears the fraction bits a narrower truncating tcacc drops
  bool output_is_fp32;
};

__device__ float round_double(double x, Rounding r) {
  switch (r) {
    case Rounding::toward_zero: return __double2float_rz(x);
    case Rounding::upward: return __double2float_ru(x);
    case Rounding::downward: return __double2float_rd(x);
    default: return __double2float_rn(x);
  }
}
__device__ float add_float(float x, float y, Rounding r) {
  switch (r) {
    case Rounding::toward_zero: return __fadd_rz(x, y);
    case Rounding::upward: return __fadd_ru(x, y);
    case Rounding::downward: return __fadd_rd(x, y);
    default: return __fadd_rn(x, y);
  }
}

// The terms of step `step` of the chunk [first, end): consecutive, or runs of `deal` dealt round robin
// (tensor_step_terms without its array).
struct StepIndex {
  int first, end, step, k_step, deal;
  template <class Body>
  __device__ void each(Body body) const {
    if (deal == 0) {
      for (int t = first + step * k_step; t < min(end, first + (step + 1) * k_step); ++t) body(t);
      return;
    }
    const int steps = (end - first + k_step - 1) / k_step;
    for (int run = step; first + run * deal < end; run += steps)
      for (int t = first + run * deal; t < min(end, first + (run + 1) * deal); ++t) body(t);
  }
};

// The step in double, as the CPU defines it (rare: see above).
struct FloatStepTerms {
  const float *a, *b;
  int n, emin;
  double c;
  const int* idx;
  int m;
  __device__ int count() const { return m + 1; }
  __device__ double value(int i) const {
    return i == 0 ? c : double(a[idx[i - 1]]) * double(b[std::size_t(idx[i - 1]) * n]);
  }
  __device__ int alignment(int i) const {
    if (i == 0) return kmath::exponent(c);
    return accum::operand_exponent_sum(a[idx[i - 1]], b[std::size_t(idx[i - 1]) * n], emin);
  }
};

__device__ float tensor_step(const TensorPlan& p, const float* a, const float* b, int n, float c, StepIndex terms) {
  // Pass 1: the alignment exponent, and whether the fast range holds.
  auto exp_of = [&](float x) { return max(int((__float_as_uint(x) >> 23) & 0xff) - 127, p.emin); };
  bool special = !isfinite(c);
  int top = c != 0 ? kmath::exponent(double(c)) : INT_MIN;
  terms.each([&](int t) {
    const float x = a[t], y = b[std::size_t(t) * n];
    special = special || !isfinite(x) || !isfinite(y);
    if (x != 0 && y != 0) top = max(top, exp_of(x) + exp_of(y));
  });
  if (special || top == INT_MIN || top < p.bits - 125 || top > 125) {
    int idx[64], m = 0;
    terms.each([&](int t) { idx[m++] = t; });
    return float(accum::tensor_core_step_over(FloatStepTerms{a, b, n, p.emin, double(c), idx, m}, true, p.dot, 0));
  }
  // Pass 2: cut terms summed exactly (|sum| < 2^(bits + 8)).
  const int quantum = top - p.bits + 1;
  const float scale = __uint_as_float(unsigned(127 - quantum) << 23);  // 2^-quantum, a normal float here
  auto cut = [&](float x) { return p.truncates ? __float2ll_rz(__fmul_rn(x, scale)) : __float2ll_rn(__fmul_rn(x, scale)); };
  long long sum = cut(c);
  terms.each([&](int t) { sum += cut(__fmul_rn(a[t], b[std::size_t(t) * n])); });
  const float r = round_double(double(sum) * __longlong_as_double((long long)(1023 + quantum) << 52), p.step_rounding);
  return __uint_as_float(__float_as_uint(r) & p.acc_mask);
}

__global__ void tensor_kernel(TensorPlan p, int m, int n, int k, const float* a, const float* b, float* c, Batch batch) {
  batch.select(a, b, c);
  const int j = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= m || j >= n) return;
  const float* ar = a + std::size_t(i) * k;
  const float* bc = b + j;
  float total = 0.0f;
  for (int first = 0, chunk = 0; first < k; first += p.chunk, ++chunk) {
    const int end = min(k, first + p.chunk);
    float part = 0.0f;
    for (int step = 0; first + step * p.k_step < end; ++step)
      part = tensor_step(p, ar, bc, n, part, StepIndex{first, end, step, p.k_step, p.deal});
    total = chunk == 0 ? part : add_float(total, part, p.acc_rounding);
  }
  c[std::size_t(i) * n + j] =
      p.output_is_fp32 ? total : float(accum::round_with(double(total), p.dot.output, p.dot.output_rounding, 0));
}

bool ieee_mode(Rounding r) {
  return r == Rounding::nearest_even || r == Rounding::toward_zero || r == Rounding::upward || r == Rounding::downward;
}

bool is_fp32(const std::optional<Format>& f) { return f && f->spec == formats::fp32; }

// Converts between the carriers on the device (every value is one of both: the formats fit a float).
template <class From, class To>
__global__ void convert_kernel(const From* in, To* out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = To(in[i]);
}
template <class From, class To>
void convert(const From* in, To* out, std::size_t n) {
  if (n) convert_kernel<<<std::min<std::size_t>((n + 255) / 256, 4096), 256>>>(in, out, n);
}

}  // namespace

std::string_view kernel_name(DeviceKernel k) {
  switch (k) {
    case DeviceKernel::none: return "cpu";
    case DeviceKernel::fp32_fma: return "gpu fp32";
    case DeviceKernel::exact: return "gpu exact";
    case DeviceKernel::tensor_core: return "gpu tensor core";
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
  if (floats && is_fp32(p.acc) && p.tc.k > 0 && p.tc.align_operands && 2 * p.input.spec.precision <= 24 &&
      tensor_core_operand_emin(p) >= formats::fp32.emin &&
      p.tc.bits <= 40 && ieee_mode(p.tc.rounding) && ieee_mode(p.acc_rounding) && tensor_core_acc_mask(p) != 0 &&
      p.output_rounding != Rounding::stochastic && !p.product)
    return DeviceKernel::tensor_core;
  return DeviceKernel::exact;
}

void launch_float_gemm(const AccumPolicy& p, int m, int n, int k, const float* ka, const float* kb, float* kc) {
  launch_float_gemms(p, m, n, k, ka, kb, kc, 1, 0, 0, 0, 1);
}

void launch_float_gemms(const AccumPolicy& p, int m, int n, int k, const float* ka, const float* kb, float* kc,
                        int count, std::size_t a_stride, std::size_t b_stride, std::size_t c_stride, int group) {
  const Batch batch{a_stride, b_stride, c_stride, group};
  const DeviceKernel kernel = device_kernel(p);
  if (kernel == DeviceKernel::tensor_core) {
    const TensorPlan tp{accum::make_dot_policy(p), p.tc.k, p.tc.deal, p.chunk_length(k), p.tc.bits,
                        tensor_core_operand_emin(p), p.tc.align_truncates, p.tc.rounding, p.acc_rounding,
                        tensor_core_acc_mask(p), p.output.spec == formats::fp32 && p.output_rounding == Rounding::nearest_even};
    tensor_kernel<<<dim3((n + 31) / 32, (m + 3) / 4, count), dim3(32, 4)>>>(tp, m, n, k, ka, kb, kc, batch);
  } else {
    const FloatPlan fp{p.product.has_value(), p.chunk_length(k),
                       p.output.spec == formats::fp32 && p.output_rounding == Rounding::nearest_even,
                       make_round_params<double>(p.output.spec), p.output_rounding};
    const bool chunked = fp.chunk < k;
    if (chunked && fp.rounded_products) launch_fp32<true, true>(fp, m, n, k, ka, kb, kc, count, batch);
    else if (chunked) launch_fp32<true, false>(fp, m, n, k, ka, kb, kc, count, batch);
    else if (fp.rounded_products) launch_fp32<false, true>(fp, m, n, k, ka, kb, kc, count, batch);
    else launch_fp32<false, false>(fp, m, n, k, ka, kb, kc, count, batch);
  }
}

// The exact kernel pairwise order recurses (depth log2 k): its stack is sized here, as the compiler cannot.
EmulatedGemm::EmulatedGemm() : buffers_(std::make_unique<Buffers>()) {
  check(cudaDeviceSetLimit(cudaLimitStackSize, 16384), "cudaDeviceSetLimit(stack)");
  std::size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  buffers_->weight_budget = free / 2;
}

void EmulatedGemm::forget(std::uint64_t b_id) {
  const std::lock_guard<std::mutex> turn(turn_);
  Buffers& d = *buffers_;
  if (auto it = d.weights.find(b_id); it != d.weights.end()) {
    d.weight_bytes -= it->second.bytes();
    d.weights.erase(it);
  }
}
EmulatedGemm::~EmulatedGemm() = default;

// A kept weight is on the GPU already; a new one is kept if it fits the budget, else copied into scratch. (An id
// always comes with the same values in the same carrier: a kept slot too small for b would be a caller's bug, and
// is copied afresh.)
template <class T>
T* EmulatedGemm::weight_on_device(std::span<const T> b, std::uint64_t b_id, Slot& scratch) {
  Buffers& d = *buffers_;
  auto kept = b_id ? d.weights.find(b_id) : d.weights.end();
  if (kept != d.weights.end() && kept->second.bytes() < b.size_bytes()) {
    d.weight_bytes -= kept->second.bytes();
    d.weights.erase(kept);
    kept = d.weights.end();
  }
  if (kept != d.weights.end()) return kept->second.get<T>(b.size());
  const bool keep = b_id && d.weight_bytes + b.size_bytes() <= d.weight_budget;
  T* hb = keep ? d.weights[b_id].get<T>(b.size()) : scratch.get<T>(b.size());
  if (keep) d.weight_bytes += d.weights[b_id].bytes();
  const Stopwatch copies(copy_seconds_);
  staged_to_device(d.staging, hb, b);
  return hb;
}
template float* EmulatedGemm::weight_on_device(std::span<const float>, std::uint64_t, Slot&);
template double* EmulatedGemm::weight_on_device(std::span<const double>, std::uint64_t, Slot&);

template <class T>
bool EmulatedGemm::run(const AccumPolicy& p, int m, int n, int k, std::span<const T> a, std::span<const T> b,
                       std::span<T> c, const StochasticStream& sr, std::uint64_t b_id) {
  const DeviceKernel kernel = device_kernel(p);
  if (kernel == DeviceKernel::none) return false;
  const std::lock_guard<std::mutex> turn(turn_);  // the buffers and the counters serve one call at a time
  ++calls_;
  if (c.empty()) return true;
  const Stopwatch call(seconds_);
  Buffers& d = *buffers_;
  T* ha = d.a_host.get<T>(a.size());
  T* hc = d.c_host.get<T>(c.size());
  T* hb = weight_on_device(b, b_id, d.b_host);
  {
    const Stopwatch copies(copy_seconds_);
    staged_to_device(d.staging, ha, a);
  }
  // In the kernel's carrier: the same values (operands and outputs are values of formats both carriers hold, or
  // of wider ones only the double path is given).
  auto launch = [&]<class K>(K*) {
    K* ka = std::is_same_v<T, K> ? reinterpret_cast<K*>(ha) : d.a_kernel.get<K>(a.size());
    K* kb = std::is_same_v<T, K> ? reinterpret_cast<K*>(hb) : d.b_kernel.get<K>(b.size());
    K* kc = std::is_same_v<T, K> ? reinterpret_cast<K*>(hc) : d.c_kernel.get<K>(c.size());
    if constexpr (!std::is_same_v<T, K>) convert(ha, ka, a.size()), convert(hb, kb, b.size());
    if constexpr (std::is_same_v<K, float>) {
      launch_float_gemm(p, m, n, k, ka, kb, kc);
    } else {
      const accum::DotPolicy dp = accum::make_dot_policy(p);
      const dim3 block(32, 4), grid((n + 31) / 32, (m + 3) / 4);
      const bool pairwise = p.order == Order::pairwise && p.tc.k == 0;
      with_rounding(p.acc_rounding, [&]<Rounding R>() {
        if (pairwise) exact_kernel<R, true><<<grid, block>>>(dp, m, n, k, ka, kb, kc, sr);
        else exact_kernel<R, false><<<grid, block>>>(dp, m, n, k, ka, kb, kc, sr);
      });
    }
    if constexpr (!std::is_same_v<T, K>) convert(kc, hc, c.size());
  };
  if (kernel == DeviceKernel::exact) launch(static_cast<double*>(nullptr));
  else launch(static_cast<float*>(nullptr));
  check(cudaGetLastError(), "kernel launch");
  check(cudaDeviceSynchronize(), "kernel");
  const Stopwatch copies(copy_seconds_);
  staged_to_host(d.staging, c, hc);
  return true;
}

bool EmulatedGemm::gemm(const AccumPolicy& p, int m, int n, int k, std::span<const float> a, std::span<const float> b,
                        std::span<float> c, const StochasticStream& sr, std::uint64_t b_id) {
  return run(p, m, n, k, a, b, c, sr, b_id);
}

bool EmulatedGemm::gemm(const AccumPolicy& p, int m, int n, int k, std::span<const double> a,
                        std::span<const double> b, std::span<double> c, const StochasticStream& sr,
                        std::uint64_t b_id) {
  return run(p, m, n, k, a, b, c, sr, b_id);
}

}  // namespace lpsim::cuda
