// The blocks, and convolutions of 1-D, 2-D and 3-D data, against PyTorch 1.13: each case of
// tests/reference/fixtures/blocks.h5 (written by tests/reference/blocks_pytorch.py from plain torch
// after diffusers' definitions) is built from its layer text, given PyTorch's parameters by name,
// and must give PyTorch's output and every gradient to 1e-4 relative (see close()).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/h5.hpp"
#include "nn/builder.hpp"
#include "nn/conv.hpp"

namespace {

const std::string kFixture = std::string(VD_SOURCE_DIR) + "/tests/reference/fixtures/blocks.h5";

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return v.empty() ? 0 : std::sqrt(s / static_cast<double>(v.size()));
}

// |a - b| <= tol * (|b| + max(rms(b), floor)) for every element: relative to each value, with
// the tensor's own scale as the margin near zero. `floor` gives a gradient that is zero in exact
// arithmetic (to_k's bias under the softmax) a scale: that of the case's other gradients.
::testing::AssertionResult close(const float* a, const std::vector<float>& b, double tol,
                                 const std::string& what, double floor = 0) {
  const double margin = std::max(rms(b), floor);
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double err = std::abs(a[i] - b[i]) / (std::abs(b[i]) + margin);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  if (worst <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": error " << worst << " (relative to |value| + " << margin << ") at " << at
         << " (ours " << a[at] << ", PyTorch " << b[at] << ")";
}

void check_case(const std::string& name) {
  SCOPED_TRACE(name);
  vd::h5::File f = vd::h5::open_file(kFixture);
  vd::h5::Group g = vd::h5::open_group(f, name);
  const std::string layers = vd::h5::read_string_attribute(g, "layers");
  vd::Shape in;
  ASSERT_TRUE(vd::parse_shape_text(vd::h5::read_string_attribute(g, "shape"), in));
  const int B = static_cast<int>(vd::h5::read_int_attribute(g, "batch"));
  vd::ParamStore store;
  vd::Graph net(in);
  vd::build_layers(net, store, "net", vd::parse_layers(layers, "net"), false, "net");
  store.finalize();
  // Every parameter of ours has PyTorch's counterpart, and no more of them exist.
  const auto torch_params = vd::h5::list_datasets(g, "params");
  ASSERT_EQ(torch_params.size(), store.entries().size()) << layers;
  for (size_t e = 0; e < store.entries().size(); ++e) {
    const auto& entry = store.entries()[e];
    const auto p = vd::h5::read_dataset<float>(g, "params/" + entry.name);
    ASSERT_EQ(p.dims, entry.shape) << entry.name;
    std::copy(p.data.begin(), p.data.end(), store.param(e));
  }
  const auto x = vd::h5::read_dataset<float>(g, "x");
  const auto r = vd::h5::read_dataset<float>(g, "r");
  const auto y = vd::h5::read_dataset<float>(g, "y");
  const auto diff_x = vd::h5::read_dataset<float>(g, "diff_x");
  std::vector<int64_t> want_dims{B};
  for (int64_t v : net.out_shape().dims()) want_dims.push_back(v);
  ASSERT_EQ(y.dims, want_dims) << "output shape";
  vd::Context ctx;
  const float* ours = net.forward(ctx, B, x.data.data());
  EXPECT_TRUE(close(ours, y.data, 1e-4, "y"));
  std::vector<float> dy = r.data, dx(x.data.size());
  net.backward(ctx, B, x.data.data(), dy.data(), dx.data());
  EXPECT_TRUE(close(dx.data(), diff_x.data, 1e-4, "diff_x"));
  std::vector<std::vector<float>> want;
  double scale = 0;  // the rms of all parameter gradients
  size_t count = 0;
  for (const auto& entry : store.entries()) {
    want.push_back(vd::h5::read_dataset<float>(g, "grads/" + entry.name).data);
    for (float v : want.back()) scale += static_cast<double>(v) * v;
    count += want.back().size();
  }
  scale = std::sqrt(scale / static_cast<double>(count));
  for (size_t e = 0; e < store.entries().size(); ++e) {
    const std::string& param = store.entries()[e].name;
    EXPECT_TRUE(close(store.grad(e), want[e], 1e-4, "gradient of " + param,
                      param.ends_with(".to_k.bias") ? 1e-2 * scale : 0.0));
  }
}

TEST(PyTorchBlocks, ResnetBlocksMatch) {
  check_case("resnet_block");
  check_case("resnet_block_same_channels");
}

TEST(PyTorchBlocks, ResidualBodyOfOwnLayersMatches) {
  check_case("own_res_body");
}

TEST(PyTorchBlocks, AttentionMatches) {
  check_case("attention");
}

TEST(PyTorchBlocks, AutoencoderKlStyleEncoderAndDecoderChainsMatch) {
  check_case("encoder_chain");
  check_case("decoder_chain");
}

// The same blocks and chains on signals [C, L] (Conv1d) and volumes [C, D, H, W] (Conv3d).
TEST(PyTorchBlocks, OneDimensionalBlocksAndChainsMatch) {
  for (const char* name :
       {"resnet_block_1d", "attention_1d", "encoder_chain_1d", "decoder_chain_1d"})
    check_case(name);
}

TEST(PyTorchBlocks, ThreeDimensionalBlocksAndChainsMatch) {
  for (const char* name :
       {"resnet_block_3d", "attention_3d", "encoder_chain_3d", "decoder_chain_3d"})
    check_case(name);
}

// PyTorch's Conv1d, ConvTranspose1d, Conv3d, ConvTranspose3d and per-axis sizes, in oneDNN's
// chosen layouts and in plain ones.
const char* const kConvCases[] = {
    "conv1d",          "conv1d_relu",      "convt1d",         "conv3d",  "convt3d",
    "conv3d_per_axis", "convt3d_per_axis", "conv2d_per_axis", "chain1d", "chain3d"};

TEST(PyTorchBlocks, ConvolutionsOfEveryRankMatchInOneDnnsLayouts) {
  for (const char* name : kConvCases) check_case(name);
}

TEST(PyTorchBlocks, ConvolutionsOfEveryRankMatchInPlainLayouts) {
  vd::set_conv_layouts(vd::ConvLayouts::Plain);
  for (const char* name : kConvCases) check_case(name);
  vd::set_conv_layouts(vd::ConvLayouts::Any);
}

}  // namespace
