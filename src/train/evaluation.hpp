// What a run measures besides its training steps: the validation and test sets' loss terms
// with the posterior-collapse diagnostics, the final importance-weighted bound, and the sample
// grids. Collective calls, except write_grids (rank 0 writes, the others return).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "config/options.hpp"
#include "data/feature_scaling.hpp"
#include "data/shard.hpp"
#include "io/run_report.hpp"
#include "nn/context.hpp"
#include "parallel/comm.hpp"
#include "vae/latent_model.hpp"
#include "vae/sample_grids.hpp"

namespace vd {

// The sums of every rank, in the report's terms: the loss and the first `terms` terms (the
// model's term_names().size()). Collective.
ReportSums reduce(const Comm& comm, const LossSums& local, int terms);

class Evaluator {
 public:
  // val and test may be null (no such set). Everything referenced must outlive the Evaluator;
  // scaling is read when the grids are drawn (set by --standardize after construction).
  Evaluator(const Options& opt, const Comm& comm, Context& ctx, LatentModel& model,
            const Shard& train, const Shard* val, const Shard* test, const FeatureScaling& scaling,
            SampleGrids& grids, std::string out);

  // The test set's loss terms and diagnostics after `epoch` (an empty ReportSums, count 0,
  // without a test set).
  ReportSums test(int64_t epoch);
  // The validation set's loss terms after `epoch`; the same however the ranks split the rows.
  ReportSums validate(int64_t epoch);
  // -log p(x) of the test set from the importance-weighted bound (NaN without a test set or
  // with --iw-samples 0). A stop signal on any rank ends it at a batch boundary on every rank:
  // NaN, and *signal holds the agreed request (0 when it ran to the end).
  double iw_nll(int* signal);
  // Rank 0: the epoch's prior samples and reconstructions of the first test (else training)
  // images into the run directory.
  void write_grids(int64_t epoch);

 private:
  ReportSums evaluate_shard(const Shard& shard,
                            const std::function<void(int n, float* eps)>& draw_eps);
  const Options& opt_;
  const Comm& comm_;
  Context& ctx_;
  LatentModel& model_;
  const Shard& train_;
  const Shard* val_;
  const Shard* test_;
  const FeatureScaling& scaling_;
  SampleGrids& grids_;
  std::string out_;
};

}  // namespace vd
