// Tests of the start-up memory check (train/memory_check): the parts' arithmetic against hand
// computation, the lower bound, the option each part names, the refusal's message, the rows of
// the importance-weighted bound's batches, and the message for a bad_alloc.
#include "train/memory_check.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"

namespace {

// The classic MLP VAE 784-400-20 by hand: 652824 parameters (the store pads each entry to
// 16 floats; the test gives the padded size), activations per row 784 (flatten) + 400 + 20 + 20
// + 400 + 784 = 2408 floats.
vd::MemoryInputs mlp_inputs() {
  vd::MemoryInputs in;
  in.param_floats = 652832;
  in.largest_param = "encoder.fc1.weight [400, 784]";
  in.param_option = "--hidden 400";
  in.activation_floats = 2408;
  in.data_size = 784;
  in.latent_dim = 20;
  in.batch_size = 128;
  in.eval_batch_size = 1000;
  in.eval_rows = 10000;
  in.iw_samples = 100;
  in.iw_test_rows = 10000;
  in.grid_size = 8;
  return in;
}

TEST(MemoryCheck, PartsAreTheHandComputedBytes) {
  const std::vector<vd::MemoryPart> parts = vd::memory_parts(mlp_inputs());
  ASSERT_EQ(parts.size(), 5u);
  // A model row: activations + diff_out (D) + 5 L workspaces (+ K = 0) = 2408 + 784 + 100.
  const double model_row = 2408 + 784 + 100;
  EXPECT_EQ(parts[0].bytes, 16.0 * 652832);  // params, grads, two Adam moments
  EXPECT_EQ(parts[0].option, "--hidden 400");
  EXPECT_EQ(parts[1].bytes, 4.0 * 64 * 20);                           // the grid's 8 x 8 draws of z
  EXPECT_EQ(parts[2].bytes, 128 * 4.0 * (model_row + 784 + 20 + 1));  // + x, eps, label
  EXPECT_EQ(parts[2].option, "--batch-size 128");
  EXPECT_EQ(parts[3].bytes, 4.0 * (1000 * 20 + 1000 * (model_row + 784)));
  EXPECT_EQ(parts[3].option, "--eval-batch-size 1000");
  // 500 rows of 100 log-weights (double), and mu, logvar, eps copies and the model's rows.
  EXPECT_EQ(parts[4].bytes, 500 * (8.0 * 100 + 4.0 * (3 * 20 + model_row + 784)));
  EXPECT_EQ(parts[4].option, "--iw-samples 100");
  // The parameters and the draws live throughout; the batches one at a time.
  EXPECT_EQ(
      vd::memory_lower_bound(parts),
      parts[0].bytes + parts[1].bytes + std::max({parts[2].bytes, parts[3].bytes, parts[4].bytes}));
  // A healthy run needs tens of MB, not more: never refused on a machine that can run it.
  EXPECT_LT(vd::memory_lower_bound(parts), 100e6);
  EXPECT_NO_THROW(vd::check_memory(parts, 200e6, "test"));
}

TEST(MemoryCheck, WithoutTestDataOrIwaeThoseBatchesAreLeftOut) {
  vd::MemoryInputs in = mlp_inputs();
  in.eval_rows = 0;
  in.iw_test_rows = 0;
  EXPECT_EQ(vd::memory_parts(in).size(), 3u);
  in = mlp_inputs();
  in.iw_samples = 0;
  EXPECT_EQ(vd::memory_parts(in).size(), 4u);
}

TEST(MemoryCheck, EachHugeSizeIsNamedByItsOption) {
  const auto largest_option = [](const vd::MemoryInputs& in) {
    const auto parts = vd::memory_parts(in);
    const vd::MemoryPart* big = &parts[0];
    for (const auto& p : parts)
      if (p.bytes > big->bytes) big = &p;
    return big->option;
  };
  vd::MemoryInputs in = mlp_inputs();
  in.batch_size = 100000000;
  EXPECT_EQ(largest_option(in), "--batch-size 100000000");
  in = mlp_inputs();
  in.eval_batch_size = 2000000000;
  EXPECT_EQ(largest_option(in), "--eval-batch-size 2000000000");
  in = mlp_inputs();
  in.latent_dim = 2000000000;  // eps, workspaces and heads: latent floats dominate every batch
  in.activation_floats = 2408 + 2 * 2e9;
  EXPECT_EQ(largest_option(in), "--latent-dim 2000000000");
  in = mlp_inputs();
  in.iw_samples = 1000000;
  in.eval_batch_size = 1000;
  // 1e6 samples: 33 rows a batch keep the weights within 256 MiB.
  EXPECT_EQ(vd::iw_rows_per_batch(1000, 1000000), 33);
  EXPECT_LE(33 * 8.0 * 1000000, static_cast<double>(vd::kIwWeightsBytes));
}

TEST(MemoryCheck, IwaeBatchesKeepTheDefaultRowsAndShrinkForALargeK) {
  EXPECT_EQ(vd::iw_rows_per_batch(1000, 100), 500);  // the defaults: unchanged, bitwise
  EXPECT_EQ(vd::iw_rows_per_batch(1000, 5000), 500);
  EXPECT_EQ(vd::iw_rows_per_batch(200, 100), 200);
  EXPECT_EQ(vd::iw_rows_per_batch(1000, 67108), 500);  // 500 x 67108 x 8 < 256 MiB
  EXPECT_EQ(vd::iw_rows_per_batch(1000, 67109), 499);
  EXPECT_EQ(vd::iw_rows_per_batch(1000, 2000000000), 1);  // at least one row
}

TEST(MemoryCheck, TheRefusalNamesTheOptionItsBytesAndTheMemoryAvailable) {
  vd::MemoryInputs in = mlp_inputs();
  in.eval_batch_size = 2000000000;
  const auto parts = vd::memory_parts(in);
  try {
    vd::check_memory(parts, 8e9, "MemAvailable in /proc/meminfo");
    ADD_FAILURE() << "160 GB were accepted in 8 GB";
  } catch (const vd::ConfigError& e) {
    const std::string what = e.what();
    // 2e9 x 20 x 4 bytes of noise, and 10000 rows x 4 x (3292 + 784) bytes.
    EXPECT_NE(what.find("--eval-batch-size 2000000000 needs at least 160.2 GB per rank (the "
                        "evaluation batch: noise for 2000000000 rows x 20 floats"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("more than the 8.0 GB of memory available to it (MemAvailable in "
                        "/proc/meminfo); lower --eval-batch-size"),
              std::string::npos)
        << what;
  }
  in = mlp_inputs();
  in.param_floats = 8.25e11;
  in.param_option = "--encoder 'fc 999999999'";
  try {
    vd::check_memory(vd::memory_parts(in), 8e9, "x");
    ADD_FAILURE() << "13 TB of parameters were accepted";
  } catch (const vd::ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--encoder 'fc 999999999' needs at least 13.2 TB per rank (the model's "
                        "8.25e+11 parameters"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("give --encoder narrower layers"), std::string::npos) << what;
  }
}

TEST(MemoryCheck, MemoryAvailableIsPositiveAndSaysWhere) {
  const vd::MemoryAvailable m = vd::memory_available();
  EXPECT_GT(m.bytes, 0);
  EXPECT_FALSE(m.source.empty());
}

TEST(MemoryCheck, BadAllocMessageNamesTheSizeFurthestAboveItsDefault) {
  vd::Options o;
  o.encoder = "fc 999999999";
  std::string m = vd::start_up_out_of_memory(o);
  EXPECT_EQ(m.find("out of memory while the run starts (std::bad_alloc); the likely cause is "
                   "--encoder 'fc 999999999'"),
            0u)
      << m;
  o = vd::Options{};
  o.batch_size = 100000000;
  m = vd::start_up_out_of_memory(o);
  EXPECT_NE(m.find("the likely cause is --batch-size 100000000"), std::string::npos) << m;
  EXPECT_NE(m.find("--eval-batch-size 1000"), std::string::npos) << m;
}

TEST(MemoryCheck, MemoryTextUsesDecimalUnits) {
  EXPECT_EQ(vd::memory_text(512), "512 bytes");
  EXPECT_EQ(vd::memory_text(13200), "13.2 KB");
  EXPECT_EQ(vd::memory_text(1.6e12), "1.6 TB");
}

}  // namespace
