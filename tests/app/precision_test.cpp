// End-to-end runs of --precision through the vae_dist binary: the refusal of bf16 on a CPU
// without it (oneDNN made to report a lower ISA with DNNL_MAX_CPU_ISA), auto's fall-back to f32,
// and checkpoints that stay f32 and resume across precisions (f32 -> bf16 -> f32).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <string>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "nn/precision.hpp"
#include "support/fashion_mnist.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

// A short MLP run on Fashion-MNIST: `steps` steps of batch 64, no importance sampling.
std::string mlp_run(const std::string& env, const std::string& out, int steps,
                    const std::string& extra) {
  return "cd " + shell_quote(VD_SOURCE_DIR) + " && " + env_prefix() + " " + env + " " +
         binary("vae_dist") + " --config configs/fashion_mlp.cfg --out " + shell_quote(out) +
         " --max-steps " + std::to_string(steps) +
         " --batch-size 64 --log-every 10 --iw-samples 0 --progress false --threads 1 " + extra;
}

TEST(AppPrecision, Bf16IsRefusedWhenOneDnnReportsNoBf16) {
  TempDir tmp;
  // AVX512_CORE is AVX-512 without bf16: what a Skylake or Zen 3 server reports.
  const CommandResult r = run_command(
      mlp_run("DNNL_MAX_CPU_ISA=AVX512_CORE", tmp.file("run"), 5, "--precision bf16"), 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "error: --precision bf16: this CPU has no native bf16"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "avx512_core_bf16")) << r.output;
  EXPECT_TRUE(contains(r.output, "use --precision f32")) << r.output;
}

TEST(AppPrecision, AutoFallsBackToF32WithAMessage) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  const CommandResult r = run_command(
      mlp_run("DNNL_MAX_CPU_ISA=AVX512_CORE", tmp.file("run"), 5, "--precision auto"), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "--precision auto: this CPU has no native bf16")) << r.output;
  EXPECT_TRUE(contains(r.output, "so training runs in f32")) << r.output;
  // An f32 run prints the table without a precision column.
  EXPECT_FALSE(contains(r.output, "output shape per sample, precision")) << r.output;
}

// The HDF5 class and size of a data set's elements.
bool is_float32(const std::string& file, const std::string& name) {
  h5::File f = h5::open_file(file);
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  if (d < 0) return false;
  const hid_t t = H5Dget_type(d);
  const bool yes = H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4;
  H5Tclose(t);
  H5Dclose(d);
  return yes;
}

TEST(AppPrecision, CheckpointsStayF32AndResumeAcrossPrecisions) {
  VD_REQUIRE_FASHION_MNIST();
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no native bf16 (" << cpu_isa_name() << ")";
  TempDir tmp;
  const std::string out = tmp.file("run");
  const CommandResult a = run_command(mlp_run("", out, 20, "--precision f32"), 120);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  // bf16 resumes from the f32 checkpoint; its table shows each layer's precision.
  const CommandResult b =
      run_command(mlp_run("", out, 40, "--precision bf16 --resume latest"), 120);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_TRUE(contains(b.output, "resumed from")) << b.output;
  EXPECT_TRUE(contains(b.output, "checkpoint_step000000020.h5")) << b.output;
  EXPECT_TRUE(contains(b.output, "output shape per sample, precision")) << b.output;
  EXPECT_TRUE(contains(b.output, "bf16")) << b.output;
  const std::string bf16_file = out + "/checkpoint_step000000040.h5";
  for (const char* name : {"/params/encoder.fc1.weight", "/params/decoder.out.bias",
                           "/adam/exp_avg/encoder.fc1.weight"})
    EXPECT_TRUE(is_float32(bf16_file, name)) << name << " in " << bf16_file;
  // f32 resumes from the bf16 run's checkpoint.
  const CommandResult c = run_command(mlp_run("", out, 60, "--precision f32 --resume latest"), 120);
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "checkpoint_step000000040.h5")) << c.output;
  // The loss keeps falling across both switches.
  const auto train = metrics_rows(out + "/metrics.csv", "train");
  ASSERT_EQ(train.size(), 6u) << read_text(out + "/metrics.csv");
  EXPECT_LT(std::stod(train.back()[4]), std::stod(train.front()[4]));
}

}  // namespace
}  // namespace vd::testing
