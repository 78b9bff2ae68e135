#pragma once
// The forward under a precision plan: values held exactly in doubles, every rounding the plan says done by the
// format layer, every GEMM and reduction by the accumulation layer (plan.hpp has the semantics). Overflows to
// Inf/NaN and saturations are counted, never thrown.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <span>
#include <vector>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/model/backend.hpp"
#include "lpsim/device/attention_block_device.hpp"
#include "lpsim/device/attention_device.hpp"
#include "lpsim/device/feed_forward_device.hpp"
#include "lpsim/model/matrix.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

struct RangeEvents {
  long overflows = 0;    // a finite value became Inf or NaN when rounded (or a GEMM of finite operands gave one)
  long saturations = 0;  // a value beyond the range was clamped to the largest finite number (saturating formats)
};

class EmulatedBackend {
 public:
  using Scalar = double;
  static constexpr BackendHooks hooks{.rows_in_parallel = true, .heads_in_parallel = true, .store_computed = true,
                                      .attention_kernel = true, .device_head = true, .device_heads = true,
                                      .device_attention = true, .device_feed_forward = true, .kv_cache = true};
  // seed feeds stochastic rounding (a plan with rounding = sr); streams are counted in forward order, so the
  // result does not depend on threads.
  explicit EmulatedBackend(PrecisionPlan plan, std::uint64_t seed = 0);
  ~EmulatedBackend();  // tells the GEMM device its weights are gone
  EmulatedBackend(EmulatedBackend&&) = default;
  EmulatedBackend& operator=(EmulatedBackend&&) = default;

  Matrix<double> gemm(Op op, const Matrix<double>& a, const Matrix<double>& b, const std::vector<double>* bias);
  // A weight is rounded (and scaled) once per backend and operation class and cached by its address: use a new
  // backend for new weights.
  Matrix<double> linear(Op op, const Matrix<double>& x, const Matrix<double>& w, const std::vector<double>* bias);
  // C + A B under the op's accumulation policy (operands rounded to its input, C values of its accumulator, zeros
  // when null), left in the accumulator: a fused kernel's tile product (flash attention, layers.hpp).
  Matrix<double> accumulate(Op op, const Matrix<double>& a, const Matrix<double>& b, const Matrix<double>* c);
  const AttentionKernel& attention_kernel() const { return plan_.attention; }
  // The plan's KV cache (plan.hpp): each key/value head replaced by what the cache returns; saturations counted.
  void store_kv(std::vector<Matrix<double>>& keys, std::vector<Matrix<double>>& values);
  double sum(Op op, std::span<const double> x);
  double dot(Op op, std::span<const double> x, std::span<const double> y);
  [[gnu::always_inline]] double compute(Op op, double v) {  // inlined: called for every elementwise step
    const Rounder& r = compute_[static_cast<int>(op)];
    if (r.fast == Fast::identity) return v;
    if (r.fast == Fast::to_float) {
      const double y = static_cast<double>(static_cast<float>(v));
      if (std::isinf(y) && !std::isinf(v)) [[unlikely]] count_events(1, 0);
      return y;
    }
    return round_one(r, v);
  }
  void store(Op op, Matrix<double>& m);
  // store() of values each a result of compute(op, ·) (layers::store_computed): where out is compute's format under
  // a deterministic rounding, each value is one already and no range event can arise, so no pass is made (24 of
  // a Tiny-ViT forward's 177 parallel regions under autocast, whose residual stream and norms are fp32 both ways).
  void store_computed(Op op, Matrix<double>& m) {
    if (!computed_is_stored_[static_cast<int>(op)]) return store(op, m);
    tick(op);
  }
  // One step of a chained activation: rounded to the op's out when the plan says the chain is composite.
  double chain_step(Op op, double v) {
    return plan_[op].composite ? round_one(out_[static_cast<int>(op)], v) : v;
  }
  void set_layer(int layer) {
    layer_ = layer;
    calls_in_layer_.fill(0);
  }
  // Bounds on |value| per layer for OutputScaling::geometry (the scale is the power of two that fits the bound).
  void set_geometry_bounds(std::vector<double> per_layer) { geometry_ = std::move(per_layer); }

  // Runs the plan's GEMMs (linear and gemm, and the block-scaled ones' partial products; not a fused kernel's
  // accumulate) on an accelerator with the same bits (the GPU: cuda/emulated_gemm.hpp); null: on the CPU. Not owned.
  void use_gemm_device(GemmDevice* device) { device_ = device; }
  // Runs whole heads of the textbook attention (S = Q K^T, scaled, softmax, P V) on an accelerator with the same
  // bits and range events (the GPU: cuda/emulated_attention.hpp), where the plan is one it takes (device_head);
  // null: on the CPU. Not owned.
  void use_attention_device(AttentionDevice* device);
  // One head (q: rows x d, k and v: keys x d, after the rotary embedding) on the attention device, as layers.hpp's
  // math kernel computes it; nullopt, with nothing computed, where there is none or it cannot take the head: the
  // flash kernel; in score, scale, softmax or pv a rounding other than nearest even, output or operand scaling,
  // block scaling, or a format a float does not hold (fp64 maths included); a softmax sum that is not the binary32
  // loop; products the device has no float kernel for; an operand value that is not a float.
  std::optional<Matrix<double>> device_head(const Matrix<double>& q, const Matrix<double>& k, const Matrix<double>& v,
                                            bool causal, ScoreScale how);
  // Whether device_heads may take a layer's heads: the device takes the plan's heads, and no rounding of the plan is
  // stochastic (the layers then rotate every query head before the first head runs, where the per-head path
  // interleaves them, which would renumber the random streams).
  bool takes_heads() const { return head_recipe_.has_value() && !stochastic_; }
  // Every head of an attention layer on the attention device in one call, as device_head would compute them one by
  // one: q[h] the (rotated) query heads, k[g] and v[g] the key/value heads, query head h with key/value head
  // h / (q.size() / k.size()). Returns rows x (heads * width), head h in columns [h * width, (h + 1) * width);
  // nullopt, with nothing computed, where takes_heads() is false or device_head would refuse a head.
  std::optional<Matrix<double>> device_heads(std::span<const Matrix<double>> q, std::span<const Matrix<double>> k,
                                             std::span<const Matrix<double>> v, bool causal, ScoreScale how);
  // Runs whole attention layers (projections, rotations, heads, output projection) on an accelerator with the same
  // bits and events (the GPU: cuda::EmulatedGemm), where the plan is one it takes and the layer's heads could go to
  // an attention device (device_heads); null: not. Not owned.
  void use_attention_block_device(AttentionBlockDevice* device);
  // One layer's attention branch (h: the normed stream) on that device, as layers.hpp's attention computes it;
  // nullopt, with nothing computed, where there is none, takes_heads() would be false for it, in qkv, rope or
  // out_proj a rounding other than nearest even, output or operand scaling, block scaling, or a format a float does
  // not hold; products the device has no float kernel for; an input value that is not a float; rotary tables that
  // are not rows x head width. With norm, h is the residual stream and the device normalises it first (layers.hpp's
  // norm with these weights and the model's kind, eps and cast); nullopt also where the plan's norm class is not one
  // a device takes (as above, and its reduction the binary32 loop).
  std::optional<Matrix<double>> device_attention(const ModelConfig& cfg, const LayerWeights<double>& w,
                                                 const Matrix<double>& h, const Matrix<double>& rope_cos,
                                                 const Matrix<double>& rope_sin,
                                                 const NormWeights<double>* norm = nullptr);
  // Runs whole feed-forward blocks (up, activation, gate, down) on an accelerator with the same bits and events
  // (the GPU: cuda::EmulatedGemm), where the plan is one it takes (device_feed_forward); null: on the CPU. Not owned.
  void use_feed_forward_device(FeedForwardDevice* device);
  // One block on that device, as layers.hpp's feed_forward computes it; nullopt, with nothing computed, where there
  // is none or it cannot take the block: in ffn_up, act or ffn_down a rounding other than nearest even, output or
  // operand scaling, block scaling, or a format a float does not hold; a gated block with a bias on its gate;
  // products the device has no float kernel for; an input value that is not a float.
  // With norm: h is the stream, normalised on the device first (as device_attention).
  std::optional<Matrix<double>> device_feed_forward(const ModelConfig& cfg, const LayerWeights<double>& w,
                                                    const Matrix<double>& h, const NormWeights<double>* norm = nullptr);

  // The parameters as the plan stores them (PrecisionPlan::params: pure-* and fp8 plans hold the model in their
  // dtype), rounded once per backend and kept: forwards run again on the backend then find the same rounded weights
  // at the same addresses, and with them their cached GEMM operands and the copies a GEMM device keeps. Other
  // weights than last time (another address) drop the copy and everything cached from it first.
  const Weights<double>& stored_params(const Weights<double>& w);
  bool holds_params_of(const Weights<double>& w) const { return params_ && params_of_ == &w; }

  const PrecisionPlan& plan() const { return plan_; }
  RangeEvents events() const { return events_; }  // totals since construction

  // Wall time per operation class, to see where a forward's time goes (lpsim-cuda emulate --phases): every interval
  // between two calls that end an op's work (store, gemm, linear; device_head and device_attention: charged to
  // score) goes to the op of the call that ends it, so what runs between them (a caller's copies) is charged to the
  // next op. Off by default.
  void time_ops(bool on) {  // from now, from zero
    timing_ = on;
    op_seconds_.fill(0);
    last_tick_ = std::chrono::steady_clock::now();
  }
  const std::array<double, op_count>& op_seconds() const { return op_seconds_; }

  // Whether the layers may call compute, sum, dot and chain_step from several threads at once (layers.hpp's row
  // loops): yes unless the plan rounds stochastically anywhere, where the random streams are numbered in call order.
  // Every other rounding depends on its value only, so any schedule gives the same bits.
  bool rows_in_parallel() const { return !stochastic_; }
  // Whether attention's heads may run on several threads at once (layers.hpp): as rows, and besides no state kept
  // in call order (current, delayed and geometry output scaling record an amax per call; a stochastic block scheme
  // draws a stream per call) and no GEMM device unless it takes calls from several threads (GemmDevice::concurrent).
  bool heads_in_parallel() const { return !stochastic_ && !ordered_state_ && (!device_ || device_->concurrent()); }

 private:
  enum class Fast : std::uint8_t { identity, to_float, general };
  struct Rounder {
    FormatSpec spec;
    Rounding mode;
    Fast fast;
    double max;  // largest finite number of the format
  };
  // A GEMM operand scaled and rounded to the input format, in float when its values are floats.
  struct Operand {
    std::vector<float, DefaultInitAllocator<float>> f;  // resize leaves floats unset: prepare writes them all
    std::vector<double> d;
    double scale = 1;
    bool finite = true;
    std::uint64_t id = 0;  // a weight's new_weight_id (a GEMM device may keep it); 0 for activations
    long overflows = 0, saturations = 0;  // what the cast to the input format added to the events (float path)
  };
  static Rounder make_rounder(const Format& f, Rounding mode);
  Operand prepare(Op op, const Matrix<double>& m);
  const Operand& weight(Op op, const Matrix<double>& w);
  Matrix<double> product(Op op, int m, int n, int k, const Operand& a, const Operand& b, const std::vector<double>* bias);
  // A bias as a product's epilogue adds it: rounded to the op's out (its range events counted, as each product
  // counts them); bias_floats: the same as floats for a device (empty for no bias).
  std::vector<double> rounded_bias(Op op, const std::vector<double>& b);
  std::vector<float> bias_floats(Op op, const std::vector<double>& b);
  // product()'s steps after a float GEMM in one pass, where they are one of the common cases (false: not taken).
  bool fused_result(Op op, int m, int n, const float* values, bool finite_operands, const std::vector<double>* bias,
                    double unscale, Matrix<double>& c);
  // Block-scaled operands (OpPrecision::blocks): quantised, multiplied by block_scaled_gemm, then the epilogue.
  Matrix<double> block_product(Op op, const Matrix<double>& a, const Matrix<double>& b, const std::vector<double>* bias,
                               bool b_is_weight);
  double float_loop(const AccumPolicy& policy, std::span<const double> x, const double* y);  // y null: a sum
  double round_one(const Rounder& r, double v);
  void round_all(const Rounder& r, std::span<double> v);
  void count_events(long overflows, long saturations) {  // from any thread
#pragma omp atomic
    events_.overflows += overflows;
#pragma omp atomic
    events_.saturations += saturations;
  }
  // The random stream of the next GEMM, reduction or block quantisation (used by stochastic rounding only),
  // numbered in call order.
  StochasticStream block_rounding_stream(const BlockScheme& s);  // a stream for a stochastic scheme only
  StochasticStream next_stream(std::uint64_t base) {
    std::uint64_t id;
#pragma omp atomic capture
    id = gemm_calls_++;
    return {seed_, base ^ (id << 16), 0};
  }

  PrecisionPlan plan_;
  std::uint64_t seed_;
  std::uint64_t sr_index_ = 0;  // stochastic rounding words used so far
  std::uint64_t gemm_calls_ = 0;
  int layer_ = 0;
  RangeEvents events_;
  Rounder compute_[op_count], out_[op_count];
  AccumPolicy product_policy_[op_count][2];  // product()'s policy: the plan's, output to out [0] or to compute [1]
  bool computed_is_stored_[op_count] = {};  // out rounds compute's values to themselves (store_computed)
  bool stochastic_ = false;  // some rounding of the plan is stochastic
  bool ordered_state_ = false;  // some op keeps per-call state (output scaling by amax, stochastic block schemes)
  bool draws_streams_ = false;  // some rounding or block scheme takes a random stream (next_stream's numbers are seen)
  std::map<std::tuple<const double*, std::size_t, int>, Operand> weights_;
  std::unique_ptr<const Weights<double>> params_;  // stored_params' copy, of the weights at params_of_
  const Weights<double>* params_of_ = nullptr;
  void drop_weights();  // the cached operands, and the device's copies of them
  // (op, layer, call within the layer: the head) -> amax of the same tensor in earlier forwards
  std::map<std::tuple<int, int, int>, std::vector<double>> amax_history_;
  std::array<int, op_count> calls_in_layer_{};
  std::vector<double> geometry_;
  GemmDevice* device_ = nullptr;
  bool timing_ = false;
  std::array<double, op_count> op_seconds_{};
  std::chrono::steady_clock::time_point last_tick_;
  void tick(Op op);  // time_ops: the interval since the last tick goes to op
  AttentionDevice* attention_device_ = nullptr;
  std::optional<AttentionHeadJob> head_recipe_;  // the plan's part of every head's job, when the device takes it
  // A recipe with one head's shape and the scale constant (rounded to the scale class's compute).
  AttentionHeadJob head_job(AttentionHeadJob recipe, int rows, int keys, int width, bool causal, ScoreScale how);
  // The device's part of a block's pre-norm with these weights of a stream `width` wide; nullopt where the plan's
  // norm class is not one a device takes.
  std::optional<NormJob> norm_job(const ModelConfig& cfg, const NormWeights<double>& w, int width);
  // A block's input as a device takes it (device_attention, device_feed_forward): with a norm, the stream as floats
  // and the norm's job; else h prepared for op, its cast's events counted `uses` times (the host's path prepares it
  // for each of its products). nullopt where a device cannot take it. The job's spans point into it.
  struct BlockInput {
    Operand prepared;           // without a norm
    std::vector<float> stream;  // with one
    std::optional<NormJob> norm;
    std::span<const float> floats() const { return norm ? std::span<const float>(stream) : std::span<const float>(prepared.f); }
  };
  std::optional<BlockInput> block_input(Op op, int uses, const ModelConfig& cfg, const Matrix<double>& h,
                                        const NormWeights<double>* norm);
  AttentionBlockDevice* block_device_ = nullptr;
  std::optional<AttentionBlockJob> block_recipe_;  // the plan's part of every layer's job, when the device takes it
  FeedForwardDevice* ffn_device_ = nullptr;
  std::optional<FeedForwardJob> ffn_recipe_;  // the plan's part of every block's job, when the device takes it
  double output_scale(Op op, const Matrix<double>& m);
  void store_rounded(Op op, Matrix<double>& m);  // store() without its tick
};

}  // namespace lpsim
