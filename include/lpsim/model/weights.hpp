#pragma once
// The parameters of a model and its input, in any scalar type. Built in double (init.hpp, safetensors.hpp), where
// every value is already one of the storage format's numbers, then converted exactly to MPFR, or to float.
#include <cstdint>
#include <vector>

#include "lpsim/model/matrix.hpp"
#include "lpsim/model/model_config.hpp"

namespace lpsim {

template <class T>
struct NormWeights {
  std::vector<T> gamma;
  std::vector<T> beta;  // empty for RMSNorm
  double eps = -1;      // < 0: the model's norm_eps; a checkpoint may carry its own (arXiv 2510.21770's Exp-3 eps bump)
  double gain_offset = 0;  // the gain applied is gain_offset + gamma, formed in the norm's compute (Gemma: 1 + w)
};

template <class T>
struct LayerWeights {
  // in x out: wq width x heads*d_head, wk and wv width x kv_heads*d_head, wo heads*d_head x width. Query head h
  // uses columns [h*d_head, (h+1)*d_head) of wq and the same rows of wo; key/value head h / (heads / kv_heads).
  Matrix<T> wq, wk, wv, wo;
  std::vector<T> bq, bk, bv, bo;  // empty when the model has no biases
  NormWeights<T> norm1, norm2;    // before (pre-LN, sandwich) or after (post-LN) attention and FFN
  NormWeights<T> post_norm1, post_norm2;  // sandwich: on the attention and FFN branches' outputs
  Matrix<T> w1, w2;               // width x ffn, ffn x width (a gated MLP: w1 is the gate)
  Matrix<T> w3;                   // width x ffn: the up projection of a gated MLP (empty otherwise)
  std::vector<T> b1, b2;
  NormWeights<T> q_norm, k_norm;  // per-head RMSNorm of queries and keys before RoPE (Qwen3); empty gamma: none
  // Mixture of experts (ModelConfig::experts > 0): the router, width x experts, and each expert's MLP in w1, w3, w2
  // (b1, b2) of its own LayerWeights; w1/w2/w3 above are then empty.
  Matrix<T> router;
  std::vector<LayerWeights> experts;
};

template <class T>
struct Weights {
  std::vector<LayerWeights<T>> layers;
  Matrix<T> patch_w;        // patch_dim x width (patch embedding)
  std::vector<T> patch_b;
  std::vector<T> cls;       // class token, width
  Matrix<T> pos;            // tokens x width (learned positions; empty without an embedding)
  Matrix<T> wte;            // vocab x width (token embedding)
  NormWeights<T> final_norm;  // after the last block (empty gamma: none)
  Matrix<T> lm_head;        // width x vocab (a copy of wte^T when tied)
  // Rotary tables, tokens x d_head: cos and sin of position * inv_freq as transformers computes them, in fp32
  // whatever the model's dtype (docs/MODELS.md), so they are model parameters shared by every backend.
  Matrix<T> rope_cos, rope_sin;
  // The frequencies the tables come from (d_head / 2, values of fp32): transformers' inv_freq buffer, which
  // model.to(dtype) rounds like any buffer (params_rounded recomputes the tables from the rounded ones).
  std::vector<T> rope_inv_freq;
  // The sliding-window layers' tables where they rotate with their own base (Gemma 3; empty otherwise).
  Matrix<T> rope_local_cos, rope_local_sin;
  std::vector<T> rope_local_inv_freq;
};

// What enters the first block: the residual stream itself (embedding none), the image cut into patches
// (num_patches x patch_dim, patch order row-major, each patch flattened as channel, row, column like a
// convolution's weight), or token ids.
template <class T>
struct ModelInput {
  Matrix<T> x;
  std::vector<int> ids;
};

template <class To, class From>
NormWeights<To> convert(const NormWeights<From>& n) {
  return {convert<To>(n.gamma), convert<To>(n.beta), n.eps, n.gain_offset};
}

template <class To, class From>
LayerWeights<To> convert_layer(const LayerWeights<From>& l) {
  LayerWeights<To> o;
  o.wq = convert<To>(l.wq), o.wk = convert<To>(l.wk), o.wv = convert<To>(l.wv), o.wo = convert<To>(l.wo);
  o.bq = convert<To>(l.bq), o.bk = convert<To>(l.bk), o.bv = convert<To>(l.bv), o.bo = convert<To>(l.bo);
  o.norm1 = convert<To>(l.norm1), o.norm2 = convert<To>(l.norm2);
  o.post_norm1 = convert<To>(l.post_norm1), o.post_norm2 = convert<To>(l.post_norm2);
  o.w1 = convert<To>(l.w1), o.w2 = convert<To>(l.w2), o.b1 = convert<To>(l.b1), o.b2 = convert<To>(l.b2);
  o.w3 = convert<To>(l.w3);
  o.q_norm = convert<To>(l.q_norm), o.k_norm = convert<To>(l.k_norm);
  o.router = convert<To>(l.router);
  for (const auto& e : l.experts) o.experts.push_back(convert_layer<To>(e));
  return o;
}

template <class To, class From>
Weights<To> convert_weights(const Weights<From>& w) {
  Weights<To> out;
  for (const auto& l : w.layers) out.layers.push_back(convert_layer<To>(l));
  out.patch_w = convert<To>(w.patch_w), out.patch_b = convert<To>(w.patch_b), out.cls = convert<To>(w.cls);
  out.pos = convert<To>(w.pos), out.wte = convert<To>(w.wte);
  out.final_norm = convert<To>(w.final_norm), out.lm_head = convert<To>(w.lm_head);
  out.rope_cos = convert<To>(w.rope_cos), out.rope_sin = convert<To>(w.rope_sin);
  out.rope_inv_freq = convert<To>(w.rope_inv_freq);
  out.rope_local_cos = convert<To>(w.rope_local_cos), out.rope_local_sin = convert<To>(w.rope_local_sin);
  out.rope_local_inv_freq = convert<To>(w.rope_local_inv_freq);
  return out;
}

template <class To, class From>
ModelInput<To> convert_input(const ModelInput<From>& in) {
  return {convert<To>(in.x), in.ids};
}

}  // namespace lpsim
