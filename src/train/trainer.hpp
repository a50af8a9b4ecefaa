// The training loop: ties data shards, the VAE, Adam and the communicator together; rank 0
// writes the metrics log, sample grids and the resolved configuration into the run directory.
#pragma once
#include <cstdint>
#include <memory>

#include "config/options.hpp"
#include "dist/comm.hpp"

namespace vd {

// What a finished run reports (every rank gets the same, already reduced values).
struct TrainSummary {
  int epochs = 0;
  int64_t steps = 0;
  int64_t samples = 0;
  double train_loss = 0;  // mean per-sample loss of the last epoch, nats
  double test_loss = 0;   // mean per-sample test loss after the last epoch (NaN if none)
  double test_recon = 0, test_kl = 0;
  double iw_nll = 0;              // -log p(x) from the importance-weighted bound (NaN if off)
  double train_images_per_s = 0;  // over all training steps of the run, all ranks
  double seconds = 0;
};

class Trainer {
 public:
  Trainer(const Options& options, const Comm& comm);
  ~Trainer();
  TrainSummary run();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace vd
