// Tiny training runs for the trainer tests: the options of a fast 16-unit MLP run on a small
// data file, and a run that returns its final parameters.
#pragma once
#include <string>
#include <vector>

#include "config/options.hpp"
#include "parallel/comm.hpp"
#include "train/trainer.hpp"

namespace vd::testing {

// 3 epochs of batch 4, one thread, no test data, checkpoints only at the end; replicas checked
// after every step.
inline Options small_options(const std::string& data, const std::string& out) {
  Options o;
  o.data = data;
  o.test_data = "";
  o.out = out;
  o.epochs = 3;
  o.batch_size = 4;
  o.hidden = {16};
  o.latent_dim = 3;
  o.lr = 3e-3;
  o.seed = 7;
  o.threads = 1;
  o.progress = false;
  o.log_every = 1000;
  o.grid_size = 2;
  o.iw_samples = 0;
  o.checksum_every = 1;
  o.checkpoint_every = 0;
  return o;
}

// Trains with `o` and returns the final parameters.
inline std::vector<float> train(const Options& o, const Comm& comm,
                                std::vector<float>* moving_average = nullptr) {
  Trainer t(o, comm);
  t.run();
  const auto p = t.params().params();
  if (moving_average != nullptr)
    moving_average->assign(t.moving_average().begin(), t.moving_average().end());
  return std::vector<float>(p.begin(), p.end());
}

}  // namespace vd::testing
