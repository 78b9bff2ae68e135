#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>

#include "cuda_check.hpp"
#include "mma_chain.hpp"

namespace lpsim::cuda {

namespace {

enum Kind { f16, bf16, e4m3, e5m2 };

template <int K>
__device__ std::uint32_t pack2(float lo, float hi);
template <>
__device__ std::uint32_t pack2<f16>(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const std::uint32_t*>(&h);
}
template <>
__device__ std::uint32_t pack2<bf16>(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&h);
}

template <int K>
__device__ std::uint32_t pack4(const float* v) {  // v[0] in the lowest byte; values are exact in the format
  const __nv_fp8_interpretation_t t = K == e4m3 ? __NV_E4M3 : __NV_E5M2;
  std::uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= std::uint32_t(__nv_cvt_float_to_fp8(v[i], __NV_SATFINITE, t)) << (8 * i);
  return r;
}

// Fragment layouts of the PTX ISA ("Matrix fragments for mma.m16n8k16 / m16n8k32"): g = lane / 4, t = lane % 4.
// 16-bit A: reg r holds row g + 8 (r & 1), columns 2t + 8 (r >> 1) + {0, 1}; B: reg r holds rows 2t + 8 r + {0, 1},
// column g. 8-bit: A reg r: row g + 8 (r & 1), columns 4t + 16 (r >> 1) + {0..3}; B reg r: rows 4t + 16 r + {0..3}.
// C/D: c[i] at row g + 8 (i >> 1), column 2t + (i & 1).
template <int K>
__global__ void mma_chain_kernel(const float* a, const float* b, float* d, int k) {
  const int tile = blockIdx.x, lane = threadIdx.x, g = lane / 4, t = lane % 4;
  const float* A = a + std::size_t(tile) * 16 * k;
  const float* B = b + std::size_t(tile) * k * 8;
  float c[4] = {0, 0, 0, 0};
  constexpr bool wide = K == f16 || K == bf16;
  constexpr int step = wide ? 16 : 32;
  for (int k0 = 0; k0 < k; k0 += step) {
    std::uint32_t ra[4], rb[2];
    if constexpr (wide) {
      for (int r = 0; r < 4; ++r) {
        const int row = g + 8 * (r & 1), col = k0 + 2 * t + 8 * (r >> 1);
        ra[r] = pack2<K>(A[row * k + col], A[row * k + col + 1]);
      }
      for (int r = 0; r < 2; ++r) {
        const int row = k0 + 2 * t + 8 * r;
        rb[r] = pack2<K>(B[row * 8 + g], B[(row + 1) * 8 + g]);
      }
    } else {
      for (int r = 0; r < 4; ++r) {
        const int row = g + 8 * (r & 1), col = k0 + 4 * t + 16 * (r >> 1);
        ra[r] = pack4<K>(A + row * k + col);
      }
      for (int r = 0; r < 2; ++r) {
        const int row = k0 + 4 * t + 16 * r;
        const float v[4] = {B[row * 8 + g], B[(row + 1) * 8 + g], B[(row + 2) * 8 + g], B[(row + 3) * 8 + g]};
        rb[r] = pack4<K>(v);
      }
    }
    if constexpr (K == f16)
      asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                   "{%0,%1,%2,%3};"
                   : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                   : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
    else if constexpr (K == bf16)
      asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                   "{%0,%1,%2,%3};"
                   : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                   : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
    else if constexpr (K == e4m3)
      asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                   "{%0,%1,%2,%3};"
                   : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                   : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
    else
      asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                   "{%0,%1,%2,%3};"
                   : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                   : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
  }
  float* D = d + std::size_t(tile) * 16 * 8;
  for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = c[i];
}

}  // namespace

std::vector<float> mma_chain(const std::string& format, int tiles, int k, const std::vector<float>& a,
                             const std::vector<float>& b) {
  const int step = format == "fp16" || format == "bf16" ? 16 : 32;
  if (k % step != 0) throw std::invalid_argument("mma_chain: K must be a multiple of " + std::to_string(step));
  if (a.size() != std::size_t(tiles) * 16 * k || b.size() != std::size_t(tiles) * k * 8)
    throw std::invalid_argument("mma_chain: operand sizes do not match tiles and K");
  DeviceBuffer<float> da(a), db(b), dd(std::size_t(tiles) * 16 * 8);
  dd.poison();
  if (format == "fp16") mma_chain_kernel<f16><<<tiles, 32>>>(da.get(), db.get(), dd.get(), k);
  else if (format == "bf16") mma_chain_kernel<bf16><<<tiles, 32>>>(da.get(), db.get(), dd.get(), k);
  else if (format == "e4m3") mma_chain_kernel<e4m3><<<tiles, 32>>>(da.get(), db.get(), dd.get(), k);
  else if (format == "e5m2") mma_chain_kernel<e5m2><<<tiles, 32>>>(da.get(), db.get(), dd.get(), k);
  else throw std::invalid_argument("mma_chain: format '" + format + "' is not fp16, bf16, e4m3 or e5m2");
  check(cudaGetLastError(), "mma_chain launch");
  return dd.to_host();
}

}  // namespace lpsim::cuda
