// MPI test (2 and 3 ranks): with the cyclical KL schedule, free bits and --standardize on float
// data, a run stopped mid-epoch or at an epoch end and resumed ends bitwise where the
// uninterrupted run ends (the schedule is a function of the global step; the statistics come
// back from the checkpoint).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "data/dataset_file.hpp"
#include "parallel/comm.hpp"
#include "support/small_run.hpp"
#include "support/temp_dir.hpp"
#include "train/trainer.hpp"

namespace {

using vd::testing::train;

TEST(TrainerKl, CyclicalFreeBitsStandardizedResumeIsBitwise) {
  const vd::Comm comm;
  std::unique_ptr<vd::testing::TempDir> dir;
  std::string root;
  if (comm.is_root()) {
    dir = std::make_unique<vd::testing::TempDir>();
    root = dir->path().string();
    vd::write_synthetic_features(root + "/sci.h5", 61, 6, 5, 3);
  }
  comm.broadcast(root, 0);
  const auto options = [&](const std::string& out) {
    vd::Options o = vd::testing::small_options(root + "/sci.h5", root + "/" + out);
    o.epochs = 4;
    o.likelihood = vd::DecoderLikelihood::Gaussian;
    o.standardize = true;
    o.kl_schedule = vd::KlScheduleKind::Cyclical;
    o.kl_cycles = 3;
    o.kl_cycle_ratio = 0.4;
    o.free_bits = 0.1;
    return o;
  };
  vd::Options whole = options("whole");
  whole.max_steps = 17;
  const std::vector<float> uninterrupted = train(whole, comm);
  for (int64_t stop : {int64_t{5}, int64_t{8}}) {
    vd::Options first = options("split" + std::to_string(stop));
    first.max_steps = stop;
    train(first, comm);
    vd::Options second = first;
    second.max_steps = 17;
    second.resume = "latest";
    const std::vector<float> resumed = train(second, comm);
    ASSERT_EQ(resumed.size(), uninterrupted.size());
    size_t differing = 0;
    for (size_t i = 0; i < resumed.size(); ++i) differing += resumed[i] != uninterrupted[i];
    EXPECT_EQ(differing, 0u) << "resume after step " << stop;
  }
  comm.barrier();  // rank 0 deletes the directory only after every rank is done with it
}

}  // namespace
