// The forward of lpsim's models on the GPU with kernels whose order of operations is known, so that lpsim's
// emulation under the matching plan must reproduce every bit (tests/…/native_bits, scripts/cuda_validate.sh).
// Mirrors include/lpsim/model/layers.hpp step by step; each kernel says which function it mirrors. Values live in
// float arrays holding numbers of their storage format; conversions use the CUDA intrinsics real kernels use.
// exp, erf, tanh and 1/sqrt are evaluated in double and rounded once (lpsim models them as correctly rounded; a
// double evaluation rounds correctly except within 2^-29 of a float tie, never seen here).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "cuda_check.hpp"
#include "native_model.hpp"

namespace lpsim::cuda {

namespace {

constexpr int op_embed = 0, op_qkv = 1, op_score = 2, op_scale = 3, op_softmax = 4, op_pv = 5, op_out_proj = 6,
              op_ffn_up = 7, op_ffn_down = 8, op_act = 9, op_norm = 10, op_residual = 11;

__device__ float round_to(float x, NativeFormat f) {
  if (f == NativeFormat::fp16) return __half2float(__float2half_rn(x));
  if (f == NativeFormat::bf16) return __bfloat162float(__float2bfloat16_rn(x));
  return x;
}

// C(i, j) = sum_k A(i, k) B(k, j) over strided operands (A(i, k) = A[i sa0 + k sa1]), each operand rounded to the
// GEMM's input format on load; accumulated sequentially from the first product. With a bias (a value of the output
// format) the fp32 sum gets it added in fp32. Mirrors EmulatedBackend::product under a sequential fma policy.
__global__ void gemm_kernel(const float* a, int sa0, int sa1, const float* b, int sb0, int sb1, const float* bias,
                            float* c, int ldc, int m, int n, int k, NativeGemm g, NativeFormat out) {
  const int i = blockIdx.y * blockDim.y + threadIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= m || j >= n) return;
  auto A = [&](int t) { return round_to(a[std::size_t(i) * sa0 + std::size_t(t) * sa1], g.in); };
  auto B = [&](int t) { return round_to(b[std::size_t(t) * sb0 + std::size_t(j) * sb1], g.in); };
  float v;
  if (g.accum == NativeAccum::fma_fp32) {
    float acc = __fmul_rn(A(0), B(0));
    for (int t = 1; t < k; ++t) acc = __fmaf_rn(A(t), B(t), acc);
    v = acc;
  } else if (g.in == NativeFormat::fp16) {
    __half acc = __hmul(__float2half_rn(A(0)), __float2half_rn(B(0)));
    for (int t = 1; t < k; ++t) acc = __hfma(__float2half_rn(A(t)), __float2half_rn(B(t)), acc);
    v = __half2float(acc);
  } else {
    __nv_bfloat16 acc = __hmul(__float2bfloat16_rn(A(0)), __float2bfloat16_rn(B(0)));
    for (int t = 1; t < k; ++t) acc = __hfma(__float2bfloat16_rn(A(t)), __float2bfloat16_rn(B(t)), acc);
    v = __bfloat162float(acc);
  }
  if (bias) v = __fadd_rn(v, round_to(bias[j], out));
  c[std::size_t(i) * ldc + j] = round_to(v, out);
}

// layers::norm, one thread per row (the reductions are sequential in lpsim's reduce policy). y doubles as the
// scratch for the centred values.
__global__ void norm_kernel(const float* x, const float* gamma, const float* beta, float* y, int rows, int d,
                            bool layernorm, float eps, NativeFormat out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const float* r = x + std::size_t(i) * d;
  float* c = y + std::size_t(i) * d;
  const float width = float(d);
  if (layernorm) {
    float s = r[0];
    for (int j = 1; j < d; ++j) s = __fadd_rn(s, r[j]);
    const float mean = __fdiv_rn(s, width);
    for (int j = 0; j < d; ++j) c[j] = __fsub_rn(r[j], mean);
  } else {
    for (int j = 0; j < d; ++j) c[j] = r[j];
  }
  float q = __fmul_rn(c[0], c[0]);
  for (int j = 1; j < d; ++j) q = __fmaf_rn(c[j], c[j], q);
  const float second = __fdiv_rn(q, width);
  const float rstd = __double2float_rn(1.0 / sqrt(double(__fadd_rn(second, eps))));
  for (int j = 0; j < d; ++j) {
    float v = __fmul_rn(__fmul_rn(c[j], rstd), gamma[j]);
    if (beta) v = __fadd_rn(v, beta[j]);
    c[j] = round_to(v, out);
  }
}

// layers::scale_scores
__global__ void scale_kernel(float* s, std::size_t n, float divisor, NativeFormat out) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) s[i] = round_to(__fdiv_rn(s[i], divisor), out);
}

// layers::softmax, one thread per row; masked entries are 0.
__global__ void softmax_kernel(const float* s, float* p, int rows, int cols, bool causal, NativeFormat out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const float* r = s + std::size_t(i) * cols;
  float* e = p + std::size_t(i) * cols;
  const int valid = causal ? min(i + 1, cols) : cols;
  float m = r[0];
  for (int j = 1; j < valid; ++j)
    if (r[j] > m) m = r[j];
  for (int j = 0; j < valid; ++j) e[j] = __double2float_rn(exp(double(__fsub_rn(r[j], m))));
  float z = e[0];
  for (int j = 1; j < valid; ++j) z = __fadd_rn(z, e[j]);
  for (int j = 0; j < cols; ++j) e[j] = j < valid ? round_to(__fdiv_rn(e[j], z), out) : 0.0f;
}

// layers::flash_head, one thread per (query row, head): key tiles of block_k keys in the plan's order; S by a
// sequential fp32 fma loop from +0 (accumulate with C = 0), x = S * scale, running maximum and sum, p = exp(x - m)
// in double rounded once, O = O * alpha, then O = P V_tile + O element by element (P rounded to the pv input,
// masked keys as zeros, as the emulation's tile product has them); a row that sees no key of a tile only gets the
// product with zeros. At the end O / l rounded to pv's out. Head sizes <= 256, tiles <= 256 keys.
__global__ void flash_kernel(const float* q, const float* k, const float* v, float* o, int n, int width, int dh,
                             bool causal, int block_k, bool reverse, NativeGemm gs, NativeGemm gv, NativeFormat out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x, hd = blockIdx.y;
  if (i >= n) return;
  float acc[256], x[256], p[256];
  const float scale = __double2float_rn(1.0 / sqrt(double(dh)));
  const float* qi = q + std::size_t(i) * width + std::size_t(hd) * dh;
  float m = -INFINITY, l = 0.0f;
  for (int c = 0; c < dh; ++c) acc[c] = 0.0f;
  const int tiles = (n + block_k - 1) / block_k;
  for (int step = 0; step < tiles; ++step) {
    const int t = reverse ? tiles - 1 - step : step;
    const int first = t * block_k, count = min(block_k, n - first);
    const int valid = causal ? max(0, min(i + 1 - first, count)) : count;
    for (int j = 0; j < count; ++j) p[j] = 0.0f;
    if (valid > 0) {
      float top = m;
      for (int j = 0; j < valid; ++j) {
        const float* kj = k + std::size_t(first + j) * width + std::size_t(hd) * dh;
        float s = __fmaf_rn(round_to(qi[0], gs.in), round_to(kj[0], gs.in), 0.0f);
        for (int c = 1; c < dh; ++c) s = __fmaf_rn(round_to(qi[c], gs.in), round_to(kj[c], gs.in), s);
        x[j] = __fmul_rn(s, scale);
        if (x[j] > top) top = x[j];
      }
      const float alpha = m == -INFINITY ? 0.0f : __double2float_rn(exp(double(__fsub_rn(m, top))));
      float sum = __fmul_rn(l, alpha);
      for (int j = 0; j < valid; ++j) {
        p[j] = __double2float_rn(exp(double(__fsub_rn(x[j], top))));
        sum = __fadd_rn(sum, p[j]);
      }
      l = sum, m = top;
      for (int c = 0; c < dh; ++c) acc[c] = __fmul_rn(acc[c], alpha);
    }
    for (int c = 0; c < dh; ++c) {
      float a = acc[c];
      for (int j = 0; j < count; ++j)
        a = __fmaf_rn(round_to(p[j], gv.in), round_to(v[std::size_t(first + j) * width + std::size_t(hd) * dh + c], gv.in), a);
      acc[c] = a;
    }
  }
  float* oi = o + std::size_t(i) * width + std::size_t(hd) * dh;
  for (int c = 0; c < dh; ++c) oi[c] = round_to(__fdiv_rn(acc[c], l), out);
}

// layers::activation in double (as lpsim evaluates it), rounded once to fp32, then stored.
__global__ void act_kernel(float* u, std::size_t n, int kind, NativeFormat out) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const double x = u[i];
  double y;
  if (kind == 0) {
    y = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
  } else if (kind == 1) {
    const double c = sqrt(2.0 / 3.141592653589793238462643383279502884);
    y = 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
  } else {
    y = x > 0 ? x : 0.0;
  }
  u[i] = round_to(__double2float_rn(y), out);
}

// layers::residual_add (and the position add of the embeddings): y = round(a + b).
__global__ void add_kernel(const float* a, const float* b, float* y, std::size_t n, NativeFormat out) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = round_to(__fadd_rn(a[i], b[i]), out);
}

__global__ void round_kernel(float* y, std::size_t n, NativeFormat out) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = round_to(y[i], out);
}

unsigned blocks(std::size_t n, unsigned threads) { return unsigned((n + threads - 1) / threads); }

using Buffer = std::unique_ptr<DeviceBuffer<float>>;
Buffer upload(const std::vector<float>& v) { return v.empty() ? nullptr : std::make_unique<DeviceBuffer<float>>(v); }
Buffer fresh(std::size_t n) {
  auto b = std::make_unique<DeviceBuffer<float>>(n);
  b->poison();
  return b;
}
const float* ptr(const Buffer& b) { return b ? b->get() : nullptr; }

struct DeviceLayer {
  Buffer wq, wk, wv, wo, bq, bk, bv, bo, g1, beta1, g2, beta2, w1, b1, w2, b2;
  explicit DeviceLayer(const NativeLayer& l)
      : wq(upload(l.wq)), wk(upload(l.wk)), wv(upload(l.wv)), wo(upload(l.wo)), bq(upload(l.bq)), bk(upload(l.bk)),
        bv(upload(l.bv)), bo(upload(l.bo)), g1(upload(l.g1)), beta1(upload(l.beta1)), g2(upload(l.g2)),
        beta2(upload(l.beta2)), w1(upload(l.w1)), b1(upload(l.b1)), w2(upload(l.w2)), b2(upload(l.b2)) {}
};

class Runner {
 public:
  Runner(const NativeModel& m, const NativePlan& plan) : m_(m), plan_(plan), n_(m.tokens), w_(m.width) {}

  std::vector<std::vector<float>> forward() {
    std::vector<std::vector<float>> taps;
    Buffer x = embed();
    for (const NativeLayer& hl : m_.layers) {
      const DeviceLayer l(hl);
      Buffer n1 = m_.pre ? norm(x->get(), l.g1, l.beta1) : nullptr;
      const Buffer a = attention(l, n1 ? n1->get() : x->get());
      taps.push_back(a->to_host());
      x = add(x->get(), a->get(), size());
      if (!m_.pre) x = norm(x->get(), l.g1, l.beta1);
      taps.push_back(x->to_host());
      Buffer n2 = m_.pre ? norm(x->get(), l.g2, l.beta2) : nullptr;
      const Buffer f = feed_forward(l, n2 ? n2->get() : x->get());
      taps.push_back(f->to_host());
      x = add(x->get(), f->get(), size());
      if (!m_.pre) x = norm(x->get(), l.g2, l.beta2);
      taps.push_back(x->to_host());
    }
    return taps;
  }

 private:
  const NativeModel& m_;
  const NativePlan& plan_;
  const int n_, w_;

  std::size_t size() const { return std::size_t(n_) * w_; }

  void gemm(int op, const float* a, int sa0, int sa1, const float* b, int sb0, int sb1, const float* bias, float* c,
            int ldc, int rows, int cols, int k) {
    const dim3 threads(16, 16), grid(blocks(cols, 16), blocks(rows, 16));
    gemm_kernel<<<grid, threads>>>(a, sa0, sa1, b, sb0, sb1, bias, c, ldc, rows, cols, k, plan_.gemm[op], plan_.out[op]);
    check(cudaGetLastError(), "gemm launch");
  }
  // x (rows x in) times a weight (in x out) plus bias: layers' be.linear.
  Buffer linear(int op, const float* x, int rows, int in, const Buffer& w, int out, const Buffer& bias) {
    Buffer y = fresh(std::size_t(rows) * out);
    gemm(op, x, in, 1, w->get(), out, 1, ptr(bias), y->get(), out, rows, out, in);
    return y;
  }
  Buffer norm(const float* x, const Buffer& gamma, const Buffer& beta) {
    Buffer y = fresh(size());
    norm_kernel<<<blocks(n_, 64), 64>>>(x, gamma->get(), ptr(beta), y->get(), n_, w_, m_.layernorm, float(m_.eps),
                                        plan_.out[op_norm]);
    check(cudaGetLastError(), "norm launch");
    return y;
  }
  Buffer add(const float* a, const float* b, std::size_t n) {
    Buffer y = fresh(n);
    add_kernel<<<blocks(n, 256), 256>>>(a, b, y->get(), n, plan_.out[op_residual]);
    check(cudaGetLastError(), "add launch");
    return y;
  }

  // layers::embed
  Buffer embed() {
    if (m_.embedding == 0) {
      Buffer x = upload(m_.x);
      round_kernel<<<blocks(size(), 256), 256>>>(x->get(), size(), plan_.out[op_residual]);
      check(cudaGetLastError(), "round launch");
      return x;
    }
    const Buffer pos = upload(m_.pos);
    std::vector<float> rows(size());  // what is added to the positions, row by row
    if (m_.embedding == 1) {
      const Buffer patches = upload(m_.x), pw = upload(m_.patch_w), pb = upload(m_.patch_b);
      const std::vector<float> e = linear(op_embed, patches->get(), m_.patches, m_.patch_dim, pw, w_, pb)->to_host();
      const int first = m_.class_token ? 1 : 0;
      if (m_.class_token) std::copy(m_.cls.begin(), m_.cls.end(), rows.begin());
      std::copy(e.begin(), e.end(), rows.begin() + std::size_t(first) * w_);
    } else {
      for (int t = 0; t < n_; ++t)
        std::copy_n(m_.wte.begin() + std::size_t(m_.ids[t]) * w_, w_, rows.begin() + std::size_t(t) * w_);
    }
    const Buffer r = upload(rows);
    return add(r->get(), pos->get(), size());
  }

  // layers::attention
  Buffer attention(const DeviceLayer& l, const float* h) {
    const Buffer q = linear(op_qkv, h, n_, w_, l.wq, w_, l.bq), k = linear(op_qkv, h, n_, w_, l.wk, w_, l.bk),
                 v = linear(op_qkv, h, n_, w_, l.wv, w_, l.bv);
    const int dh = w_ / m_.heads;
    if (plan_.flash) {
      if (dh > 256) throw std::invalid_argument("native flash kernel: head size above 256");
      Buffer heads = fresh(size());
      flash_kernel<<<dim3(blocks(n_, 64), m_.heads), 64>>>(q->get(), k->get(), v->get(), heads->get(), n_, w_, dh,
                                                           m_.causal, plan_.block_k, plan_.reverse, plan_.gemm[op_score],
                                                           plan_.gemm[op_pv], plan_.out[op_pv]);
      check(cudaGetLastError(), "flash launch");
      return linear(op_out_proj, heads->get(), n_, w_, l.wo, w_, l.bo);
    }
    Buffer heads = fresh(size()), s = fresh(std::size_t(n_) * n_), p = fresh(std::size_t(n_) * n_);
    const float divisor = float(std::sqrt(double(dh)));
    for (int hd = 0; hd < m_.heads; ++hd) {
      // S = Q_h K_h^T: B(k, j) = K(j, hd dh + k)
      gemm(op_score, q->get() + hd * dh, w_, 1, k->get() + hd * dh, 1, w_, nullptr, s->get(), n_, n_, n_, dh);
      scale_kernel<<<blocks(s->size(), 256), 256>>>(s->get(), s->size(), divisor, plan_.out[op_scale]);
      check(cudaGetLastError(), "scale launch");
      softmax_kernel<<<blocks(n_, 64), 64>>>(s->get(), p->get(), n_, n_, m_.causal, plan_.out[op_softmax]);
      check(cudaGetLastError(), "softmax launch");
      gemm(op_pv, p->get(), n_, 1, v->get() + hd * dh, w_, 1, nullptr, heads->get() + hd * dh, w_, n_, dh, n_);
    }
    return linear(op_out_proj, heads->get(), n_, w_, l.wo, w_, l.bo);
  }

  // layers::feed_forward
  Buffer feed_forward(const DeviceLayer& l, const float* h) {
    Buffer u = linear(op_ffn_up, h, n_, w_, l.w1, m_.ffn, l.b1);
    act_kernel<<<blocks(u->size(), 256), 256>>>(u->get(), u->size(), m_.activation, plan_.out[op_act]);
    check(cudaGetLastError(), "activation launch");
    return linear(op_ffn_down, u->get(), n_, m_.ffn, l.w2, w_, l.b2);
  }
};

}  // namespace

std::vector<std::vector<float>> native_forward(const NativeModel& m, const NativePlan& plan) {
  if (m.heads <= 0 || m.width % m.heads != 0 || int(m.layers.size()) != m.depth)
    throw std::invalid_argument("native_forward: heads, width and layers do not fit together");
  return Runner(m, plan).forward();
}

}  // namespace lpsim::cuda
