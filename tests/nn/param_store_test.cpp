// Tests of vd::ParamStore: layout (contiguous, aligned, non-overlapping), lookup errors,
// lifecycle errors and zeroing.
#include "nn/param_store.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace {

// Shapes with sizes that are not multiples of 16, so padding is exercised.
vd::ParamStore& filled_store(vd::ParamStore& s) {
  s.add("enc.weight", {400, 784});
  s.add("enc.bias", {400});
  s.add("mu.weight", {20, 400});
  s.add("mu.bias", {20});
  s.add("odd", {3, 5, 7});
  s.add("one", {1});
  return s;
}

TEST(ParamStore, EntriesAreInOrderAlignedAndPackedUpToPadding) {
  vd::ParamStore s;
  filled_store(s);
  s.finalize();
  const auto& e = s.entries();
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0].offset, 0u);
  EXPECT_EQ(e[0].size, 400u * 784u);
  EXPECT_EQ(e[4].size, 105u);
  EXPECT_EQ(e[4].shape, (std::vector<int64_t>{3, 5, 7}));
  size_t used = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    used += e[i].size;
    EXPECT_EQ(e[i].offset % vd::ParamStore::kAlignFloats, 0u) << e[i].name;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.param(i)) % 64, 0u) << e[i].name;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.grad(i)) % 64, 0u) << e[i].name;
    EXPECT_EQ(s.param(i), s.params().data() + e[i].offset);
    EXPECT_EQ(s.grad(i), s.grads().data() + e[i].offset);
    if (i + 1 < e.size()) {
      // The next entry starts at the first aligned offset after this one ends.
      const size_t end = e[i].offset + e[i].size;
      EXPECT_GE(e[i + 1].offset, end);
      EXPECT_LT(e[i + 1].offset, end + vd::ParamStore::kAlignFloats);
    }
  }
  EXPECT_EQ(s.num_parameters(), used);
  EXPECT_GE(s.size(), e.back().offset + e.back().size);
  EXPECT_LT(s.size(), e.back().offset + e.back().size + vd::ParamStore::kAlignFloats);
  EXPECT_EQ(s.params().size(), s.size());
  EXPECT_EQ(s.grads().size(), s.size());
}

TEST(ParamStore, ViewsDoNotOverlapAndParamsAreSeparateFromGrads) {
  vd::ParamStore s;
  filled_store(s);
  s.finalize();
  // Mark every float of every entry with its entry index + 1, then read back.
  for (size_t i = 0; i < s.entries().size(); ++i) {
    for (float& x : s.param_view(i)) x = static_cast<float>(i + 1);
    for (float& x : s.grad_view(i)) x = -static_cast<float>(i + 1);
  }
  for (size_t i = 0; i < s.entries().size(); ++i) {
    for (float x : s.param_view(i)) ASSERT_EQ(x, static_cast<float>(i + 1));
    for (float x : s.grad_view(i)) ASSERT_EQ(x, -static_cast<float>(i + 1));
  }
  // Padding is untouched by any view.
  size_t marked = 0;
  for (float x : s.params()) marked += x != 0.0f;
  EXPECT_EQ(marked, s.num_parameters());
}

TEST(ParamStore, FinalizeZeroFillsAndZeroGradsClearsOnlyGrads) {
  vd::ParamStore s;
  filled_store(s);
  s.finalize();
  for (float x : s.params()) ASSERT_EQ(x, 0.0f);
  for (float x : s.grads()) ASSERT_EQ(x, 0.0f);
  for (float& x : s.params()) x = 1.5f;
  for (float& x : s.grads()) x = 2.5f;
  s.zero_grads();
  for (float x : s.grads()) ASSERT_EQ(x, 0.0f);
  for (float x : s.params()) ASSERT_EQ(x, 1.5f);
}

TEST(ParamStore, FindReturnsTheEntryAndListsNamesWhenMissing) {
  vd::ParamStore s;
  filled_store(s);
  EXPECT_EQ(s.find("mu.bias").size, 20u);
  EXPECT_EQ(s.index_of("odd"), 4u);
  try {
    s.find("dec.weight");
    FAIL() << "find() of a missing name did not throw";
  } catch (const vd::ShapeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("dec.weight"), std::string::npos) << what;
    for (const auto& entry : s.entries())
      EXPECT_NE(what.find(entry.name), std::string::npos) << what;
  }
}

TEST(ParamStore, LifecycleAndShapeErrorsThrow) {
  vd::ParamStore s;
  s.add("a", {2, 3});
  EXPECT_THROW(s.add("a", {4}), vd::ShapeError);
  EXPECT_THROW(s.add("b", {}), vd::ShapeError);
  EXPECT_THROW(s.add("c", {2, 0}), vd::ShapeError);
  EXPECT_THROW(s.add("d", {-1}), vd::ShapeError);
  EXPECT_THROW(s.add("", {1}), vd::ShapeError);
  EXPECT_FALSE(s.finalized());
  EXPECT_THROW(s.param(0), vd::Error);
  EXPECT_TRUE(s.params().empty());
  s.finalize();
  EXPECT_TRUE(s.finalized());
  EXPECT_THROW(s.add("e", {1}), vd::Error);
  EXPECT_THROW(s.finalize(), vd::Error);
  EXPECT_THROW(s.param(1), vd::ShapeError);
  EXPECT_THROW(s.grad(7), vd::ShapeError);
  EXPECT_EQ(s.entries().size(), 1u);
}

}  // namespace
