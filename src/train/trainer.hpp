// The training loop: plan -> batch -> step -> gradient sum -> report, over the data shards,
// the VAE, Adam and the communicator; resume and stop signals. What rank 0 shows and writes
// lives in io/RunReport, vae/SampleGrids and io/checkpoint.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "nn/param_store.hpp"
#include "parallel/comm.hpp"

namespace vd {

// What a finished run reports (every rank gets the same, already reduced values).
struct TrainSummary {
  int epochs = 0;     // epochs the run reached
  int64_t steps = 0;  // optimizer steps in total (including resumed ones)
  int64_t samples = 0;
  double train_loss = 0;           // mean per-sample loss of the last epoch's steps, nats
  double test_loss = 0;            // mean per-sample test loss after the last epoch (NaN if none)
  std::vector<double> test_terms;  // the model's loss terms' test means (term_names order)
  double iw_nll = 0;               // -log p(x) from the importance-weighted bound (NaN if off)
  double train_images_per_s = 0;   // over the training steps of this process, all ranks
  double seconds = 0;
  int signal = 0;               // SIGTERM/SIGINT that stopped the run early, else 0
  std::string last_checkpoint;  // path of the newest checkpoint written ("" if none)
  // Validation (NaN / empty without validation data): the last evaluation's loss terms, the
  // best loss so far with its step and best.h5, and whether early stopping ended the run.
  double val_loss = 0;
  std::vector<double> val_terms;
  double best_val_loss = 0;
  int64_t best_val_step = -1;
  std::string best_checkpoint;  // "" until a best.h5 exists
  bool early_stopped = false;
  double peak_rss_mb = 0;        // the largest peak resident memory of any rank, MB
  double data_wait_seconds = 0;  // streamed data: the most any rank's steps waited for reads
};

class Trainer {
 public:
  // Reads the shards, builds and initialises (or restores, with --resume) the model.
  Trainer(const Options& options, const Comm& comm);
  ~Trainer();
  TrainSummary run();
  // The replica's parameters (identical on every rank), e.g. for tests.
  const ParamStore& params() const;
  // The moving average of the weights in the parameters' layout (empty without --ema-decay).
  std::span<const float> moving_average() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace vd
