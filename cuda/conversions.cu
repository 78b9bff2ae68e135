#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <stdexcept>

#include "conversions.hpp"

namespace lpsim::cuda {

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

__global__ void convert_kernel(const float* in, float* out, std::size_t n, int kind) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float x = in[i];
  float y = 0;
  switch (kind) {
    case 0: y = __half2float(__float2half_rn(x)); break;
    case 1: y = __bfloat162float(__float2bfloat16_rn(x)); break;
    case 2: y = float(__nv_fp8_e4m3(x)); break;  // the constructor saturates (SATFINITE)
    case 3: {
      __nv_fp8_storage_t s = __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E4M3);
      y = __half2float(__half(__nv_cvt_fp8_to_halfraw(s, __NV_E4M3)));
      break;
    }
    case 4: y = float(__nv_fp8_e5m2(x)); break;
    case 5: {
      __nv_fp8_storage_t s = __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E5M2);
      y = __half2float(__half(__nv_cvt_fp8_to_halfraw(s, __NV_E5M2)));
      break;
    }
  }
  out[i] = y;
}
}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

std::string name(NativeConversion c) {
  const char* names[] = {"fp16_rn", "bf16_rn", "e4m3_satfinite", "e4m3_nosat", "e5m2_satfinite", "e5m2_nosat"};
  return names[int(c)];
}

std::vector<float> convert_on_device(const std::vector<float>& in, NativeConversion c) {
  const std::size_t n = in.size();
  std::vector<float> out(n);
  float *d_in = nullptr, *d_out = nullptr;
  check(cudaMalloc(&d_in, n * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&d_out, n * sizeof(float)), "cudaMalloc");
  check(cudaMemcpy(d_in, in.data(), n * sizeof(float), cudaMemcpyHostToDevice), "copy to device");
  const unsigned threads = 256, blocks = unsigned((n + threads - 1) / threads);
  convert_kernel<<<blocks, threads>>>(d_in, d_out, n, int(c));
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpy(out.data(), d_out, n * sizeof(float), cudaMemcpyDeviceToHost), "copy to host");
  cudaFree(d_in);
  cudaFree(d_out);
  return out;
}

}  // namespace lpsim::cuda
