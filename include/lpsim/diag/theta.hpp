#pragma once
// arXiv 2602.18849's balanced-mass factor: ||J_softmax(p)||_{inf->1} = theta(p) = max over subsets S of 4 p(S) (1 - p(S)),
// i.e. 1 - (1 - 2m)^2 for the subset mass m closest to 1/2 (docs/SOURCES.md derives it). A partition problem:
// - p_max >= 1/2: exactly 4 p_max (1 - p_max) (subsets with the largest entry have mass >= p_max, the others
//   <= 1 - p_max, both p_max - 1/2 away from 1/2);
// - at most 24 nonzero entries: exact, by meet-in-the-middle over all subsets;
// - longer rows: a subset-sum over masses quantised to 2^-16 finds a subset (its theta is a lower bound, attained)
//   and a proven upper bound from the quantisation error (at most n 2^-17 on any subset's mass).
#include <span>

namespace lpsim {

struct Theta {
  double value = 0;  // 4 m (1 - m) for the best subset found: exact when `exact`, else a lower bound
  double upper = 0;  // proven upper bound (== value when exact)
  bool exact = false;
};

Theta theta(std::span<const double> p);

}  // namespace lpsim
