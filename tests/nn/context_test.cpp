// Tests of vd::Context's floating-point environment: denormals flushed in the constructing
// thread, in OpenMP workers that existed before it, and in threads started after it.
#include "nn/context.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

// A denormal input times one, and a product that underflows into the denormal range: both
// zero with DAZ and FTZ, both non-zero under IEEE defaults. volatile keeps them at run time.
bool flushes() {
  volatile float denormal = std::bit_cast<float>(uint32_t{1});  // 1.4e-45
  volatile float one = 1.0f, tiny = 1e-20f;
  const float kept = denormal * one;
  const float product = tiny * tiny;
  return kept == 0.0f && product == 0.0f;
}

TEST(Context, FlushesDenormalsInEveryThread) {
  if (!vd::denormals_flushed()) {
    EXPECT_FALSE(flushes()) << "IEEE defaults should keep denormals before any Context";
  }
  // Start the OpenMP workers first, so the Context must reach threads that already exist.
  omp_set_num_threads(2);
  std::vector<int> before(2, -1);
#pragma omp parallel num_threads(2)
  before[static_cast<size_t>(omp_get_thread_num())] = vd::denormals_flushed();

  vd::Context ctx;
  EXPECT_TRUE(vd::denormals_flushed());
  EXPECT_TRUE(flushes());
  std::vector<int> after(2, 0);
#pragma omp parallel num_threads(2)
  after[static_cast<size_t>(omp_get_thread_num())] = flushes() && vd::denormals_flushed();
  EXPECT_EQ(after, (std::vector<int>{1, 1}));
  bool in_new_thread = false;
  std::thread([&] { in_new_thread = flushes(); }).join();
  EXPECT_TRUE(in_new_thread);
}

}  // namespace
