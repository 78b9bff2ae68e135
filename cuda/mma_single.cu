// One Hopper mma.sync.m16n8k32 fp8 instruction (f32 accumulate) per 16x8 tile, D = A B + C, on inputs from a file:
// scripts/fp8_mma_single.py says how to run it. On sm_90 ptxas compiles it to fp8->fp16 unpacks, two
// HMMA.16816.F32 from zero and an FADD of C (docs/CUDA.md); lpsim's fp8e4m3-mma preset is that model.
// in.bin: int32 format (0 e4m3, 1 e5m2), int32 tiles, then per tile A[16*32], B[32*8] (row-major), C[16*8], f32.
#include <cuda_fp8.h>
#include <cstdint>
#include <cstdio>
#include <vector>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); return 1; } } while (0)
template <int F>
__device__ uint32_t pack4(const float* v, int stride) {
  const __nv_fp8_interpretation_t t = F == 0 ? __NV_E4M3 : __NV_E5M2;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t(__nv_cvt_float_to_fp8(v[i * stride], __NV_NOSAT, t)) << (8 * i);
  return r;
}
template <int F>
__global__ void kern(const float* in, float* out) {
  const int tile = blockIdx.x, lane = threadIdx.x, g = lane / 4, t = lane % 4;
  const float* A = in + size_t(tile) * (16 * 32 + 32 * 8 + 16 * 8);
  const float* B = A + 16 * 32;
  const float* C = B + 32 * 8;
  float c[4];
  for (int i = 0; i < 4; ++i) c[i] = C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
  uint32_t ra[4], rb[2];
  for (int r = 0; r < 4; ++r) ra[r] = pack4<F>(A + (g + 8 * (r & 1)) * 32 + 4 * t + 16 * (r >> 1), 1);
  for (int r = 0; r < 2; ++r) rb[r] = pack4<F>(B + (4 * t + 16 * r) * 8 + g, 8);
  if constexpr (F == 0)
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
  float* D = out + size_t(tile) * 128;
  for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = c[i];
}
int main(int argc, char** argv) {
  FILE* f = fopen(argv[1], "rb");
  int32_t fmt, tiles;
  if (!f || fread(&fmt, 4, 1, f) != 1 || fread(&tiles, 4, 1, f) != 1) { printf("bad input\n"); return 1; }
  const size_t per = 16 * 32 + 32 * 8 + 16 * 8;
  std::vector<float> h(per * tiles), o(128 * size_t(tiles), -12345.0f);
  if (fread(h.data(), 4, h.size(), f) != h.size()) { printf("short input\n"); return 1; }
  float *din, *dout;
  CK(cudaMalloc(&din, h.size() * 4));
  CK(cudaMalloc(&dout, o.size() * 4));
  CK(cudaMemcpy(din, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dout, o.data(), o.size() * 4, cudaMemcpyHostToDevice));
  if (fmt == 0) kern<0><<<tiles, 32>>>(din, dout); else kern<1><<<tiles, 32>>>(din, dout);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(o.data(), dout, o.size() * 4, cudaMemcpyDeviceToHost));
  FILE* g = fopen(argv[2], "wb");
  fwrite(o.data(), 4, o.size(), g);
  fclose(g);
  printf("%s: %d tiles done\n", argv[1], tiles);
  return 0;
}
