// Convolutions of 1-D and 3-D data (and per-axis sizes) against PyTorch 1.13: each case of
// tests/reference/fixtures/conv_nd.h5 (written by tests/reference/conv_nd_pytorch.py) is built
// from its layer text, given PyTorch's parameters by name, and must give PyTorch's output and
// every gradient to 1e-4 relative (see close()), in blocked and in plain layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/h5.hpp"
#include "nn/builder.hpp"
#include "nn/conv.hpp"

namespace {

const std::string kFixture = std::string(VD_SOURCE_DIR) + "/tests/reference/fixtures/conv_nd.h5";

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return v.empty() ? 0 : std::sqrt(s / static_cast<double>(v.size()));
}

// |a - b| <= tol * (|b| + rms(b)) for every element: relative to each value, with the tensor's
// own scale as the margin near zero (float sums of different order differ there).
::testing::AssertionResult close(const float* a, const std::vector<float>& b, double tol,
                                 const std::string& what) {
  const double margin = rms(b);
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
  // Every parameter of ours has PyTorch's counterpart of the same shape, and no more exist.
  ASSERT_EQ(vd::h5::list_datasets(g, "params").size(), store.entries().size()) << layers;
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
  for (size_t e = 0; e < store.entries().size(); ++e)
    EXPECT_TRUE(close(store.grad(e),
                      vd::h5::read_dataset<float>(g, "grads/" + store.entries()[e].name).data, 1e-4,
                      "gradient of " + store.entries()[e].name));
}

const std::vector<std::string> kCases = {
    "conv1d",          "conv1d_relu",      "convt1d",         "conv3d",  "convt3d",
    "conv3d_per_axis", "convt3d_per_axis", "conv2d_per_axis", "chain1d", "chain3d"};

TEST(PyTorchConvNd, EveryCaseMatchesInOneDnnsLayouts) {
  for (const auto& c : kCases) check_case(c);
}

TEST(PyTorchConvNd, EveryCaseMatchesInPlainLayouts) {
  vd::set_conv_layouts(vd::ConvLayouts::Plain);
  for (const auto& c : kCases) check_case(c);
  vd::set_conv_layouts(vd::ConvLayouts::Any);
}

}  // namespace
