// norm_on_device: layers.hpp's norm on the GPU, every step the CPU's double or binary32 operation.
#include "norm_on_device.hpp"

#include <cuda_runtime.h>

#include "device_passes.cuh"
#include "lpsim/model/row_kernels.hpp"

namespace lpsim::cuda {

namespace {

struct Counts {
  unsigned long long overflows, saturations, beyond, now_infinite;
};

struct NormPass {
  int rows, width;
  bool rms, cast, fma;
  double epsilon;
  ElementRounding compute, out, input;
  const double *gamma, *beta;  // beta null: none
};

// Each row's mean (LayerNorm) and rstd, as layers.hpp's norm computes them: the sum and the dot product by the
// reduce policy's binary32 loop (EmulatedBackend::float_loop), every other step in double rounded to compute. The
// centred values' roundings are counted here, once.
__global__ void norm_rows_kernel(NormPass p, const float* x, double* stats, Counts* counts) {
  ElementEvents events;
  auto compute = [&](double v) {
    const double y = round_element(p.compute, v);
    events.compute(p.compute, v, y);
    return y;
  };
  auto term = [&](float v, float s) { return p.fma ? __fmaf_rn(v, v, s) : __fadd_rn(s, __fmul_rn(v, v)); };
  const double width = p.width;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.rows; i += gridDim.x * blockDim.x) {
    const float* r = x + std::size_t(i) * p.width;
    double mean = 0;
    float s;
    if (p.rms) {
      s = __fmul_rn(r[0], r[0]);
      for (int j = 1; j < p.width; ++j) s = term(r[j], s);
    } else {
      float sum = r[0];
      for (int j = 1; j < p.width; ++j) sum = __fadd_rn(sum, r[j]);
      mean = compute(__ddiv_rn(double(sum), width));
      const float c0 = float(compute(__dsub_rn(double(r[0]), mean)));
      s = __fmul_rn(c0, c0);
      for (int j = 1; j < p.width; ++j) s = term(float(compute(__dsub_rn(double(r[j]), mean))), s);
    }
    const double second = compute(__ddiv_rn(double(s), width));
    const double rstd = rows::norm_rstd(second, p.epsilon, compute);  // layers.hpp's norm, the same code
    stats[2 * std::size_t(i)] = mean, stats[2 * std::size_t(i) + 1] = rstd;
  }
  add_events(counts, events);
}

// Each element: centred * rstd, the gain (and shift) or, with cast, the store before the gain; the class's store;
// then the cast to the block's first input (prepare()'s counts).
__global__ void norm_elements_kernel(NormPass p, const float* x, const double* stats, float* h, Counts* counts) {
  ElementEvents events;
  long beyond = 0, now_infinite = 0;
  auto compute = [&](double v) {
    const double y = round_element(p.compute, v);
    events.compute(p.compute, v, y);
    return y;
  };
  auto store = [&](double v) {
    const double y = round_element(p.out, v);
    events.store(p.out, v, y);
    return y;
  };
  const std::size_t n = std::size_t(p.rows) * p.width;
  LPSIM_FOR_EACH(e, n) {
    const std::size_t i = e / p.width;
    const int j = int(e % p.width);
    const double mean = stats[2 * i], rstd = stats[2 * i + 1];
    const double c = p.rms ? double(x[e]) : round_element(p.compute, __dsub_rn(double(x[e]), mean));
    double y;
    if (p.cast) {
      y = store(compute(__dmul_rn(c, rstd)));
      y = store(compute(__dmul_rn(y, p.gamma[j])));
    } else {
      y = store(rows::norm_affine(c, rstd, p.gamma[j], p.beta ? &p.beta[j] : nullptr, compute));
    }
    beyond += fabs(y) > p.input.max && isfinite(y);
    const double in = round_element(p.input, y);
    now_infinite += !isfinite(in);
    h[e] = float(in);
  }
  add_events(counts, events);
  add(&counts->beyond, beyond);
  add(&counts->now_infinite, now_infinite);
}

}  // namespace

NormResult norm_on_device(NormBuffers& b, const NormJob& job, const float* x, int rows, int width,
                          const ElementRounding& cast, float* h) {
  double* stats = b.stats.get<double>(2 * std::size_t(rows));
  double* gamma = b.gamma.get<double>(job.gamma.size());
  to_device(gamma, job.gamma);
  double* beta = nullptr;
  if (!job.beta.empty()) {
    beta = b.beta.get<double>(job.beta.size());
    to_device(beta, job.beta);
  }
  Counts* counts = b.counts.get<Counts>(1);
  check(cudaMemset(counts, 0, sizeof(Counts)), "cudaMemset");
  const NormPass p{rows, width, job.rms, job.cast, job.fma, job.epsilon, job.compute, job.out, cast, gamma, beta};
  norm_rows_kernel<<<(rows + 63) / 64, 64>>>(p, x, stats, counts);  // small blocks: the rows spread over the SMs
  norm_elements_kernel<<<blocks_for(std::size_t(rows) * width), 256>>>(p, x, stats, h, counts);
  check(cudaGetLastError(), "norm kernels");
  Counts c{};
  to_host(std::span<Counts>(&c, 1), static_cast<const Counts*>(counts));
  return {long(c.overflows), long(c.saturations), c.beyond, c.now_infinite};
}

}  // namespace lpsim::cuda
