#pragma once
// Progress of a long command on stderr: one updating line with rate and ETA on a terminal, a plain line at every
// tenth of the work in a log; nothing for work done within its first two seconds (a short run stays quiet).
// `--quiet` (any command) turns every Progress off through progress_quiet.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <utility>

namespace lpsim {

inline std::atomic<bool> progress_quiet{false};

class Progress {
 public:
  // label: what is counted ("sweep", "fp8study"); unit: its name ("units", "batches").
  Progress(std::string label, std::string unit, int total, bool enabled = true)
      : label_(std::move(label)), unit_(std::move(unit)), total_(total),
        enabled_(enabled && total > 0 && !progress_quiet), tty_(::isatty(2)) {}
  // Call with the number done so far (1..total), from one thread at a time.
  void step(int done) {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = done / std::max(elapsed, 1e-9);
    const double eta = (total_ - done) / std::max(rate, 1e-12);
    if (!shown_ && elapsed < 2) return;
    shown_ = true;
    if (tty_) {
      const int width = 30, filled = int(static_cast<long long>(done) * width / total_);
      fmt::print(stderr, "\r{}: [{}{}] {}/{} {}  {:.3g} {}/s  ETA {:.0f} s   ", label_, std::string(filled, '#'),
                 std::string(width - filled, '.'), done, total_, unit_, rate, unit_, eta);
      if (done == total_) fmt::print(stderr, "\n");
    } else if (static_cast<long long>(done) * 10 / total_ != static_cast<long long>(done - 1) * 10 / total_ ||
               done == total_) {
      fmt::print(stderr, "{}: {}/{} {}, {:.3g} {}/s, ETA {:.0f} s\n", label_, done, total_, unit_, rate, unit_, eta);
    }
  }

 private:
  std::string label_, unit_;
  int total_;
  bool enabled_, tty_, shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace lpsim
