#pragma once
// Two scalars that run the one forward (NativeBackend<T>) to differentiate it: Dual carries one tangent
// (Jacobian-vector products), Var records a tape (vector-Jacobian products by one backward sweep). Elementary
// functions are those the forward uses: + - * /, comparisons, exp, sqrt, erf, tanh.
#include <cmath>
#include <vector>

namespace lpsim::ad {

struct Dual {
  double v = 0, d = 0;
  Dual() = default;
  Dual(double value, double tangent = 0) : v(value), d(tangent) {}
};
inline Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
inline Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
inline Dual operator-(Dual a) { return {-a.v, -a.d}; }
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
inline Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }
inline bool operator>(Dual a, Dual b) { return a.v > b.v; }
inline bool operator<(Dual a, Dual b) { return a.v < b.v; }
inline Dual exp(Dual a) { const double e = std::exp(a.v); return {e, e * a.d}; }
inline Dual sqrt(Dual a) { const double s = std::sqrt(a.v); return {s, a.d / (2 * s)}; }
inline Dual tanh(Dual a) { const double t = std::tanh(a.v); return {t, (1 - t * t) * a.d}; }
inline Dual erf(Dual a) { return {std::erf(a.v), 2 / std::sqrt(3.141592653589793) * std::exp(-a.v * a.v) * a.d}; }

// The tape of the thread: node i has up to two parents with the partial derivatives of its value.
struct Tape {
  struct Node {
    int a = -1, b = -1;
    double da = 0, db = 0;
  };
  std::vector<Node> nodes;
  static Tape& current() {
    static thread_local Tape t;
    return t;
  }
  int push(int a, double da, int b = -1, double db = 0) {
    nodes.push_back({a, b, da, db});
    return int(nodes.size()) - 1;
  }
  // Adjoints of every node given the adjoints of some (seed): one sweep from the last node to the first.
  std::vector<double> backward(const std::vector<std::pair<int, double>>& seed) const {
    std::vector<double> adj(nodes.size(), 0.0);
    for (const auto& [i, g] : seed) adj[i] += g;
    for (int i = int(nodes.size()) - 1; i >= 0; --i) {
      if (adj[i] == 0) continue;
      const Node& n = nodes[i];
      if (n.a >= 0) adj[n.a] += n.da * adj[i];
      if (n.b >= 0) adj[n.b] += n.db * adj[i];
    }
    return adj;
  }
};

struct Var {
  double v = 0;
  int i = -1;  // -1: a constant (no node)
  Var() = default;
  Var(double value) : v(value) {}
  static Var input(double value) { Var x(value); x.i = Tape::current().push(-1, 0); return x; }
};
inline Var node(double v, int a, double da, int b = -1, double db = 0) {
  Var r(v);
  if (a >= 0 || b >= 0) r.i = Tape::current().push(a, da, b, db);
  return r;
}
inline Var operator+(Var a, Var b) { return node(a.v + b.v, a.i, 1, b.i, 1); }
inline Var operator-(Var a, Var b) { return node(a.v - b.v, a.i, 1, b.i, -1); }
inline Var operator-(Var a) { return node(-a.v, a.i, -1); }
inline Var operator*(Var a, Var b) { return node(a.v * b.v, a.i, b.v, b.i, a.v); }
inline Var operator/(Var a, Var b) { return node(a.v / b.v, a.i, 1 / b.v, b.i, -a.v / (b.v * b.v)); }
inline bool operator>(Var a, Var b) { return a.v > b.v; }
inline bool operator<(Var a, Var b) { return a.v < b.v; }
inline Var exp(Var a) { const double e = std::exp(a.v); return node(e, a.i, e); }
inline Var sqrt(Var a) { const double s = std::sqrt(a.v); return node(s, a.i, 1 / (2 * s)); }
inline Var tanh(Var a) { const double t = std::tanh(a.v); return node(t, a.i, 1 - t * t); }
inline Var erf(Var a) { return node(std::erf(a.v), a.i, 2 / std::sqrt(3.141592653589793) * std::exp(-a.v * a.v)); }

}  // namespace lpsim::ad
