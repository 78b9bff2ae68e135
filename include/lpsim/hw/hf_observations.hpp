#pragma once
// Observed forward errors of transformers' own model classes on the GPU (scripts/hf_observe.py writes them to
// results/hf/observed.csv) beside lpsim's prediction for the same checkpoint directory, input and mode: the replay
// that keeps lpsim honest about what PyTorch and transformers really round (CI runs it without a GPU).
#include <string>
#include <vector>

namespace lpsim {

struct HfComparison {
  std::string model, mode, tap;  // mode: autocast-fp16, pure-bf16, ... (also the lpsim preset predicting it)
  int layer = 0;                 // the final norm and logits at layer = depth
  double observed = 0, predicted = 0;  // ||X - X_ref||_F / ||X_ref||_F
  // logits rows: KL mean and top-1 agreement, observed and predicted (nan elsewhere)
  double kl_observed = 0, kl_predicted = 0, top1_observed = 0, top1_predicted = 0;
  double ratio() const { return predicted / observed; }
};

struct HfTolerance {
  double relative = 0.05;  // |predicted / observed - 1| for every tap
  double top1 = 0.02;      // |top-1 agreement difference|
};

// Reads DIR/observed.csv and predicts each (model, mode) from DIR/models/<model> with its input.txt, under the
// preset of the same name against the MPFR reference. Throws ConfigError for a malformed file or unknown model.
std::vector<HfComparison> compare_hf_observations(const std::string& dir);
bool within(const HfComparison& c, const HfTolerance& t);

// A mixture-of-experts layer's routing on the GPU (DIR/routes.csv: per mode, layer and token the experts
// transformers' router chose, "fp64" for its float64 run) against lpsim's emulation of the same mode.
struct HfRouteAgreement {
  std::string model, mode;
  int layer = 0, tokens = 0;
  int same_set = 0, same_order = 0;  // tokens whose expert set (and order) lpsim predicts as the GPU chose
};
// Empty when DIR/routes.csv does not exist.
std::vector<HfRouteAgreement> compare_hf_routes(const std::string& dir);
std::string hf_route_csv(const std::vector<HfRouteAgreement>& rows);
std::string hf_comparison_csv(const std::vector<HfComparison>& rows);

}  // namespace lpsim
