// EarlyStopping::observe: a strict improvement resets the count, anything else adds one.
#include "optim/early_stopping.hpp"

#include <cmath>

namespace vd {

EarlyStopping::Verdict EarlyStopping::observe(double loss, int64_t step) {
  Verdict v;
  if (std::isfinite(loss) && loss < state_.best) {
    state_.best = loss;
    state_.best_step = step;
    state_.bad_evaluations = 0;
    v.improved = true;
  } else {
    ++state_.bad_evaluations;
  }
  v.stop = patience_ > 0 && state_.bad_evaluations >= patience_;
  return v;
}

}  // namespace vd
