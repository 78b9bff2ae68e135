// The reference's cost beside the emulated forward it measures, each phase in its own process so that its peak
// memory is its own: the emulated forward, the double-double reference, its check (sampled MPFR recomputation
// and the fp64 forward that gives the gain), and optionally the whole-forward MPFR reference with its check.
//   lpsim_bench_reference [model=models/gpt2-small.toml] [plan=autocast-bf16] [tokens=0: the model's] [mpfr]
// Peak memory includes the model's weights (held once, as doubles: the weights line says how much that is).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "bench_timing.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"

using namespace lpsim;

namespace {

struct Phase {
  double seconds = 0;   // the phase's own work, weights excluded
  double peak_gb = 0;   // the child's peak resident memory
  double extra = 0;     // a number the phase reports (the dd estimate)
};

// Runs body in a child process; body returns (seconds, extra).
Phase in_child(const std::function<std::pair<double, double>()>& body) {
  int fd[2];
  if (pipe(fd) != 0) std::exit(1);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    const auto [s, x] = body();
    double out[2] = {s, x};
    if (write(fd[1], out, sizeof out) != sizeof out) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  double in[2] = {NAN, NAN};
  if (read(fd[0], in, sizeof in) != sizeof in) std::fprintf(stderr, "phase failed\n");
  close(fd[0]);
  int status = 0;
  rusage use{};
  wait4(pid, &status, 0, &use);
  return {in[0], use.ru_maxrss / 1e6, in[1]};  // ru_maxrss is in KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model = argc > 1 ? argv[1] : "models/gpt2-small.toml";
  const std::string plan_name = argc > 2 ? argv[2] : "autocast-bf16";
  const int tokens = argc > 3 ? std::atoi(argv[3]) : 0;
  const bool mpfr = argc > 4 && std::strcmp(argv[4], "mpfr") == 0;
  ModelConfig cfg = load_model_config(model);
  if (tokens > 0) cfg.tokens = tokens;
  const PrecisionPlan plan = plan_preset(plan_name);
  std::printf("model %s: width %d, depth %d, %d tokens, vocab %d; %.3g multiply-adds per forward; plan %s\n",
              cfg.name.c_str(), cfg.width, cfg.depth, cfg.tokens, cfg.vocab, forward_multiply_adds(cfg),
              plan_name.c_str());
  std::fflush(stdout);
  auto setup = [&] { return std::pair{make_weights(cfg, 0), make_input(cfg, 0)}; };

  const Phase weights = in_child([&] {
    const auto [w, in] = setup();
    return std::pair{0.0, 0.0};
  });
  const Phase emulated = in_child([&] {
    const auto [w, in] = setup();
    EmulatedBackend be(plan, 0);
    return std::pair{bench::seconds([&] { emulated_taps(be, cfg, w, in); }), 0.0};
  });
  const Phase dd = in_child([&] {
    const auto [w, in] = setup();
    return std::pair{bench::seconds([&] { dd_taps(cfg, w, in, 0); }), 0.0};
  });
  const Phase checked = in_child([&] {
    const auto [w, in] = setup();
    ReferenceCheck c;
    const double s = bench::seconds([&] {
      SampledCheck sampled;
      const Taps<DD> ref = dd_taps(cfg, w, in, 0, &sampled);
      estimate_dd_error(c, sampled, fp64_taps(cfg, w, in), ref);
    });
    return std::pair{s, c.fro_rel};
  });
  const double check = checked.seconds - dd.seconds;
  std::printf("%-34s %10s %9s %12s\n", "phase", "seconds", "x emul.", "peak GB");
  std::printf("%-34s %10s %9s %12.2f\n", "weights and input alone", "-", "-", weights.peak_gb);
  std::printf("%-34s %10.2f %9.2f %12.2f\n", "emulated forward", emulated.seconds, 1.0, emulated.peak_gb);
  std::printf("%-34s %10.2f %9.2f %12.2f\n", "double-double reference", dd.seconds, dd.seconds / emulated.seconds,
              dd.peak_gb);
  std::printf("%-34s %10.2f %9.2f %12.2f\n", "  its check (sampled MPFR, fp64)", check, check / emulated.seconds,
              checked.peak_gb);
  std::printf("%-34s %10.2f %9.2f %12s\n", "reference + check", checked.seconds, checked.seconds / emulated.seconds,
              "-");
  std::printf("estimated error of the double-double reference: %.2e\n", checked.extra);
  if (mpfr) {
    const Phase m = in_child([&] {
      const auto [w, in] = setup();
      return std::pair{bench::seconds([&] { reference_taps(128, cfg, w, in); }), 0.0};
    });
    std::printf("%-34s %10.2f %9.2f %12.2f\n", "MPFR reference (128 bits)", m.seconds, m.seconds / emulated.seconds,
                m.peak_gb);
  }
  return 0;
}
