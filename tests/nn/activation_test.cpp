// Tests of vd::Eltwise (the kinds silu, gelu, leakyrelu A, tanh, sigmoid): hand-computed values,
// a chain with blocked layouts (conv 16 -> 32 before the activation) against the double
// reference and central finite differences, zero padding of nChw16c at 20 channels, the
// parser's messages, and PyTorch's outputs and gradients (tests/reference/layers_pytorch.py),
// which also cover vd::Upsample.
#include "nn/activation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "nn/conv.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/graph.hpp"
#include "nn/linear.hpp"
#include "nn/registry.hpp"
#include "nn/reshape.hpp"
#include "nn/upsample.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"
#include "support/temp_dir.hpp"
#include "vae/architecture.hpp"

namespace {

using vd::Activation;
using vd::Shape;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// The layer a config text such as "leakyrelu 0.2" builds, through its kind.
std::unique_ptr<vd::Layer> make_layer(vd::ParamStore& store, const std::string& name,
                                      const Shape& in, const std::string& text) {
  const vd::LayerText l = vd::split_layer_list(text).at(0);
  const vd::LayerKind* kind = vd::find_layer_kind(l.keyword);
  if (!kind) throw std::runtime_error("no layer kind '" + l.keyword + "'");
  kind->check(l);
  vd::BuildSite site{
      .store = store, .name = name, .in = in, .act = vd::Activation::None, .what = "net"};
  return kind->build(site, l);
}

// One layer's forward and backward on plain x [N, in] and g [N, out] with its src in
// `src_layout` (reordered there and back): y and dx, plain.
struct LayerRun {
  std::vector<float> y, dx;
  vd::Layout dst_layout;
};
LayerRun run_layer(vd::Context& ctx, vd::Layer& layer, int n, const vd::Layout& src_layout,
                   const std::vector<float>& x, const std::vector<float>& g) {
  const vd::Layout plain_in = vd::plain_layout(n, layer.in_shape());
  const vd::Layout plain_out = vd::plain_layout(n, layer.out_shape());
  LayerRun r;
  r.dst_layout = layer.prepare(ctx, n, src_layout);
  // Buffers in the layer's layouts, padding zero as the Graph's are.
  std::vector<float> src(vd::layout_floats(src_layout), 0.0f);
  std::vector<float> dst(vd::layout_floats(r.dst_layout), std::nanf(""));
  std::vector<float> diff_dst(vd::layout_floats(r.dst_layout), 0.0f);
  std::vector<float> diff_src(vd::layout_floats(src_layout), std::nanf(""));
  vd::ReorderPrims(ctx.engine, plain_in, src_layout).run(ctx.stream, x.data(), src.data());
  layer.forward(ctx, n, src.data(), dst.data());
  vd::ReorderPrims(ctx.engine, plain_out, r.dst_layout).run(ctx.stream, g.data(), diff_dst.data());
  layer.backward(ctx, n, src.data(), dst.data(), diff_dst.data(), diff_src.data());
  r.y.resize(static_cast<size_t>(n * layer.out_shape().size()));
  r.dx.resize(x.size());
  vd::ReorderPrims(ctx.engine, r.dst_layout, plain_out).run(ctx.stream, dst.data(), r.y.data());
  vd::ReorderPrims(ctx.engine, src_layout, plain_in).run(ctx.stream, diff_src.data(), r.dx.data());
  return r;
}

// ---------------------------------------------------------------------------------------------
// Hand-computed values

struct HandCase {
  std::string text;
  std::vector<double> y, dy;  // f(x) and f'(x) at x = -2, -0.5, 0, 1.5
};

TEST(Eltwise, ForwardAndBackwardMatchHandComputedValues) {
  // silu: x sigmoid(x), derivative sigmoid(x) (1 + x (1 - sigmoid(x)));
  // gelu: x Phi(x), derivative Phi(x) + x phi(x) (Phi, phi: standard normal cdf and density);
  // leakyrelu 0.2: x or 0.2 x, derivative 1 or 0.2 (0.2 at x = 0, as PyTorch);
  // tanh: derivative 1 - tanh^2; sigmoid: derivative s (1 - s). Values to 8 digits.
  const std::vector<HandCase> cases = {
      {"silu",
       {-0.23840584, -0.18877033, 0, 1.2263617},
       {-0.090784249, 0.26003881, 0.5, 1.0412942}},
      {"gelu",
       {-0.045500264, -0.15426877, 0, 1.3997892},
       {-0.085231801, 0.13250488, 0.5, 1.1274692}},
      {"leakyrelu 0.2", {-0.4, -0.1, 0, 1.5}, {0.2, 0.2, 0.2, 1}},
      {"tanh", {-0.96402758, -0.46211716, 0, 0.90514825}, {0.070650825, 0.78644773, 1, 0.18070664}},
      {"sigmoid",
       {0.11920292, 0.37754067, 0.5, 0.81757448},
       {0.10499359, 0.23500371, 0.25, 0.14914645}},
  };
  const std::vector<float> x = {-2.0f, -0.5f, 0.0f, 1.5f};
  const std::vector<float> ones(4, 1.0f);
  vd::Context ctx;
  vd::ParamStore store;
  for (const HandCase& c : cases) {
    auto layer = make_layer(store, "a", Shape{4, 1, 1}, c.text);
    EXPECT_EQ(layer->describe(), c.text);
    const LayerRun r = run_layer(ctx, *layer, 1, vd::plain_layout(1, Shape{4, 1, 1}), x, ones);
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_NEAR(r.y[i], c.y[i], 1e-6) << c.text << " at x = " << x[i];
      EXPECT_NEAR(r.dx[i], c.dy[i], 1e-6) << c.text << "' at x = " << x[i];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Blocked layouts

// conv 16 -> 32, ACT, conv 32 -> 20, ACT, flatten, fc 4: oneDNN lays both convolutions' dst out
// in nChw16c (AVX-512), the second with 12 channels of padding, so both activations run on
// blocked data. Input and output plain, as in the model.
struct Chain {
  static constexpr int kOut = 4;
  vd::ParamStore store;
  vd::Graph g{Shape{16, 6, 6}};
  vd::Context ctx;
  vd::Eltwise* act1 = nullptr;
  vd::Eltwise* act2 = nullptr;
  explicit Chain(const std::string& act) {
    vd::ConvSpec c;
    c.kernel = 3;
    c.pad = 1;
    c.out_channels = 32;
    g.add(std::make_unique<vd::Conv2d>(store, "c1", g.out_shape(), c, Activation::None));
    g.add(make_layer(store, "a1", g.out_shape(), act));
    c.out_channels = 20;
    g.add(std::make_unique<vd::Conv2d>(store, "c2", g.out_shape(), c, Activation::None));
    g.add(make_layer(store, "a2", g.out_shape(), act));
    g.add(vd::make_flatten("flat", g.out_shape()));
    g.add(std::make_unique<vd::Linear>(store, "fc", g.out_shape(), kOut, Activation::None));
    store.finalize();
    vd::Rng rng(3);
    g.init(rng);
    act1 = dynamic_cast<vd::Eltwise*>(g.layers()[1]);
    act2 = dynamic_cast<vd::Eltwise*>(g.layers()[3]);
  }
  std::vector<double> reference(const std::vector<double>& p, const double* x) const {
    std::vector<double> h(x, x + g.in_shape().size());
    for (const auto& l : g.layers()) h = vd::testing::reference_layer(store, p, *l, h);
    return h;
  }
};

const std::vector<std::string> kKinds = {"silu",           "gelu", "leakyrelu 0.2",
                                         "leakyrelu -0.5", "tanh", "sigmoid"};

TEST(Eltwise, BlockedChainForwardMatchesTheDoubleReference) {
  for (const std::string& act : kKinds) {
    Chain c(act);
    const int B = 3, D = static_cast<int>(c.g.in_shape().size());
    vd::Rng rng(9);
    std::vector<float> x(static_cast<size_t>(B) * D);
    for (auto& v : x) v = static_cast<float>(rng.uniform(-1.5, 1.5));
    const float* y = c.g.forward(c.ctx, B, x.data());
    // The blocked path is what this test covers: both activations saw nChw16c.
    ASSERT_NE(c.act1->impl_info(B).find("layout nChw16c"), std::string::npos)
        << c.act1->impl_info(B);
    ASSERT_NE(c.act2->impl_info(B).find("layout nChw16c"), std::string::npos)
        << c.act2->impl_info(B);
    auto pp = c.store.params();
    const std::vector<double> p(pp.begin(), pp.end());
    const std::vector<double> xd(x.begin(), x.end());
    double worst = 0;
    for (int b = 0; b < B; ++b) {
      const auto want = c.reference(p, xd.data() + static_cast<size_t>(b) * D);
      for (size_t i = 0; i < want.size(); ++i)
        worst = std::max(worst, std::abs(y[static_cast<size_t>(b) * Chain::kOut + i] - want[i]) /
                                    std::max(1.0, std::abs(want[i])));
    }
    EXPECT_LT(worst, 1e-5) << act;
  }
}

TEST(Eltwise, BlockedChainGradientsMatchFiniteDifferences) {
  for (const std::string& act : kKinds) {
    SCOPED_TRACE(act);
    Chain c(act);
    const int B = 2, D = static_cast<int>(c.g.in_shape().size()), O = Chain::kOut;
    vd::Rng rng(11);
    std::vector<float> x(static_cast<size_t>(B) * D), r(static_cast<size_t>(B) * O);
    for (auto& v : x) v = static_cast<float>(rng.uniform(-1.5, 1.5));
    for (auto& v : r) v = static_cast<float>(rng.uniform(-1, 1));
    // Loss = sum_b,o r[b,o] * y[b,o]: dL/dy = r.
    c.g.forward(c.ctx, B, x.data());
    std::vector<float> diff_y = r, diff_x(x.size());
    c.g.backward(c.ctx, B, x.data(), diff_y.data(), diff_x.data());

    auto pp = c.store.params();
    std::vector<double> p(pp.begin(), pp.end());
    const std::vector<double> xd(x.begin(), x.end());
    const auto loss = [&](const std::vector<double>& q, const std::vector<double>& xs) {
      double total = 0;
      for (int b = 0; b < B; ++b) {
        const auto y = c.reference(q, xs.data() + static_cast<size_t>(b) * D);
        for (int o = 0; o < O; ++o) total += r[static_cast<size_t>(b * O + o)] * y[o];
      }
      return total;
    };
    // Parameters of both convolutions (whose gradients pass through the activations'
    // diff_src) and of the fc.
    vd::Rng pick(5);
    std::vector<double> analytic, numeric;
    for (const auto& e : c.store.entries()) {
      vd::testing::sample_entry_gradient(
          c.store, e, p, [&](const std::vector<double>& q) { return loss(q, xd); }, pick, 10,
          analytic, numeric);
    }
    EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3));
    // The data's gradient, through every layer. leakyrelu is piecewise linear: a step of 1e-5
    // crosses a kink only where a pre-activation lies within ~1e-5 of 0.
    analytic.clear();
    numeric.clear();
    for (int t = 0; t < 30; ++t) {
      const size_t i = pick.below(x.size());
      const double h = 1e-5;
      std::vector<double> xp = xd, xm = xd;
      xp[i] += h;
      xm[i] -= h;
      analytic.push_back(diff_x[i]);
      numeric.push_back((loss(p, xp) - loss(p, xm)) / (2 * h));
    }
    EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3));
  }
}

// nChw16c at 20 channels holds 12 channels of padding per pixel, which oneDNN's convolutions
// read as zeros. sigmoid(0) = 0.5 (and f of whatever an input holds there) would put non-zeros
// there if nobody cleared it. The inputs' padding holds NaN here: the outputs' padding must be
// zero, and their values those of the same layer on plain data. Also nChw8c, and NChw16n16c
// (padded in N and C, not channel-blocked alone: the general zeroing path).
TEST(Eltwise, BlockedPaddingStaysZeroWhateverTheInputsHoldThere) {
  const int N = 2, C = 20, H = 3, W = 5;
  vd::Context ctx;
  vd::ParamStore store;
  const vd::Layout plain = vd::plain_layout(N, Shape{C, H, W});
  vd::Rng rng(4);
  std::vector<float> x(static_cast<size_t>(N * C * H * W)), g(x.size());
  for (auto& v : x) v = static_cast<float>(rng.uniform(-3, 3));
  for (auto& v : g) v = static_cast<float>(rng.uniform(-1, 1));
  for (const tag t : {tag::nChw16c, tag::nChw8c, tag::NChw16n16c}) {
    const vd::Layout blocked({N, C, H, W}, dt::f32, t);
    // The padding: where a reorder of all ones leaves zeros.
    std::vector<float> ones(x.size(), 1.0f), mask(vd::layout_floats(blocked), 7.0f);
    vd::ReorderPrims(ctx.engine, plain, blocked).run(ctx.stream, ones.data(), mask.data());
    std::vector<size_t> padding;
    for (size_t i = 0; i < mask.size(); ++i)
      if (mask[i] == 0.0f) padding.push_back(i);
    ASSERT_EQ(padding.size(), mask.size() - x.size());
    ASSERT_FALSE(padding.empty());
    for (const std::string& act : kKinds) {
      SCOPED_TRACE(act + " in " +
                   (t == tag::nChw16c  ? "nChw16c"
                    : t == tag::nChw8c ? "nChw8c"
                                       : "NChw16n16c"));
      auto layer = make_layer(store, "a", Shape{C, H, W}, act);
      const LayerRun want = run_layer(ctx, *layer, N, plain, x, g);
      EXPECT_EQ(layer->prepare(ctx, N, blocked), blocked) << "dst must lie in src's layout";
      std::vector<float> src(mask.size()), diff_dst(src.size());
      std::vector<float> dst(src.size(), 1.0f), diff_src(src.size(), 1.0f);
      vd::ReorderPrims(ctx.engine, plain, blocked).run(ctx.stream, x.data(), src.data());
      vd::ReorderPrims(ctx.engine, plain, blocked).run(ctx.stream, g.data(), diff_dst.data());
      for (size_t i : padding) src[i] = diff_dst[i] = std::nanf("");
      layer->forward(ctx, N, src.data(), dst.data());
      layer->backward(ctx, N, src.data(), dst.data(), diff_dst.data(), diff_src.data());
      int bad_dst = 0, bad_diff = 0;
      for (size_t i : padding) {
        bad_dst += dst[i] != 0.0f;
        bad_diff += diff_src[i] != 0.0f;
      }
      EXPECT_EQ(bad_dst, 0) << "non-zero padding in dst";
      EXPECT_EQ(bad_diff, 0) << "non-zero padding in diff_src";
      std::vector<float> y(x.size()), dx(x.size());
      vd::ReorderPrims(ctx.engine, blocked, plain).run(ctx.stream, dst.data(), y.data());
      vd::ReorderPrims(ctx.engine, blocked, plain).run(ctx.stream, diff_src.data(), dx.data());
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_NEAR(y[i], want.y[i], 1e-6 * std::max(1.0f, std::abs(want.y[i]))) << i;
        ASSERT_NEAR(dx[i], want.dx[i], 1e-6 * std::max(1.0f, std::abs(want.dx[i]))) << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The parser

void expect_config_error(const std::string& text, const std::vector<std::string>& says) {
  try {
    vd::parse_layers(text, "encoder");
    ADD_FAILURE() << "no error for '" << text << "'";
  } catch (const vd::ConfigError& e) {
    const std::string msg = e.what();
    for (const std::string& s : says)
      EXPECT_NE(msg.find(s), std::string::npos) << "'" << text << "': " << msg;
  }
}

TEST(Eltwise, SyntaxErrorsNameTheLayerAndTheFix) {
  expect_config_error("conv 32 k3 p1, leakyrelu",
                      {"encoder", "layer 'leakyrelu'", "takes one slope, e.g. 'leakyrelu 0.2'"});
  expect_config_error("leakyrelu 0.2 0.3",
                      {"layer 'leakyrelu 0.2 0.3'", "takes one slope, e.g. 'leakyrelu 0.2'"});
  expect_config_error("leakyrelu abc",
                      {"layer 'leakyrelu abc'", "'abc' is not one", "write e.g. 'leakyrelu 0.2'"});
  expect_config_error("leakyrelu 0.2x", {"'0.2x' is not one"});
  expect_config_error("leakyrelu nan", {"'nan' is not one"});
  expect_config_error("leakyrelu(fc 3)", {"takes one slope"});
  expect_config_error("fc 10, silu 2",
                      {"layer 'silu 2'", "'silu' takes no arguments; write 'silu'"});
  expect_config_error("gelu tanh",
                      {"layer 'gelu tanh'", "tanh approximation is not offered", "write 'gelu'"});
  expect_config_error("gelu 1", {"'gelu' takes no arguments; write 'gelu'"});
  expect_config_error("tanh x", {"'tanh' takes no arguments; write 'tanh'"});
  expect_config_error("sigmoid(fc 2)", {"'sigmoid' takes no arguments; write 'sigmoid'"});
}

TEST(Eltwise, KindsBuildUnfusedLayersWithTheirSyntaxHelp) {
  for (const char* kw : {"silu", "gelu", "leakyrelu", "tanh", "sigmoid"}) {
    const vd::LayerKind* k = vd::find_layer_kind(kw);
    ASSERT_NE(k, nullptr) << kw;
    EXPECT_EQ(k->activation, Activation::None) << kw << " must not be fused as a ReLU";
    EXPECT_FALSE(k->params);
    EXPECT_NE(vd::layer_syntax_help().find("'" + k->syntax + "'"), std::string::npos) << kw;
    EXPECT_FALSE(k->torch.empty()) << kw;
  }
  EXPECT_EQ(vd::find_layer_kind("leakyrelu")->syntax, "leakyrelu A");
  EXPECT_EQ(vd::find_layer_kind("leakyrelu")->torch, "nn.LeakyReLU(A)");
  // After a layer that fuses ReLU, each stays a layer of its own.
  const auto layers =
      vd::parse_layers("conv 32 k3 p1, silu, gelu, leakyrelu 0.25, tanh, sigmoid", "decoder");
  vd::ParamStore store;
  vd::Graph g{Shape{16, 4, 4}};
  vd::build_layers(g, store, "decoder", layers, false, "decoder");
  std::vector<std::string> got;
  for (const vd::Layer* l : g.layers()) got.push_back(l->describe());
  EXPECT_EQ(got, (std::vector<std::string>{"conv 32 k3 s1 p1", "silu", "gelu", "leakyrelu 0.25",
                                           "tanh", "sigmoid"}));
  EXPECT_EQ(g.out_shape(), (Shape{32, 4, 4}));
}

// ---------------------------------------------------------------------------------------------
// PyTorch

// Debian's python3 first (it has torch; the pyenv python3 on PATH does not), then PATH's.
std::string python_with_torch(std::string& tried) {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    tried += (tried.empty() ? "" : ", ") + std::string(py);
    if (vd::testing::run_command(std::string(py) + " -c 'import torch, h5py'", 120).exit_code == 0)
      return py;
  }
  return "";
}

// Relative to the value, on a scale of at least 0.1 (an absolute 1e-6 there): the values are
// O(1) (x in [-6, 6], g in [-2, 2]), and near saturation the derivatives from dst, 1 - y^2 and
// y (1 - y), lose float32 digits to cancellation in PyTorch's float32 as in ours (at x = 6 the
// two differ by 2.4e-7, 2.4e-4 of the value); a sum of nine gradients that is 0 comes out as
// 1.2e-7 in PyTorch's order of additions.
::testing::AssertionResult close_to_torch(const std::vector<float>& got,
                                          const std::vector<float>& want, double rel) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << got.size() << " values, torch has " << want.size();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err =
        std::abs(double{got[i]} - want[i]) / std::max(0.1, std::abs(double{want[i]}));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  if (worst <= rel) return ::testing::AssertionSuccess() << "worst relative error " << worst;
  return ::testing::AssertionFailure() << "worst relative error " << worst << " at " << at << ": "
                                       << got[at] << " vs torch " << want[at];
}

TEST(PyTorchReference, ActivationsAndUpsamplingMatchTorch) {
  std::string tried;
  const std::string py = python_with_torch(tried);
  if (py.empty()) GTEST_SKIP() << "no python3 with torch and h5py (tried " << tried << ")";
  vd::testing::TempDir dir;
  const std::string out = dir.file("layers.h5");
  const auto run = vd::testing::run_command(
      py + " " + std::string(VD_SOURCE_DIR) + "/tests/reference/layers_pytorch.py " + out, 300);
  ASSERT_EQ(run.exit_code, 0) << run.output;

  vd::Context ctx;
  vd::ParamStore store;
  vd::h5::File file = vd::h5::open_file(out);
  int groups = 0;
  for (int k = 0; vd::h5::exists(file, "layer" + std::to_string(k)); ++k, ++groups) {
    const std::string grp = "layer" + std::to_string(k);
    const std::string text = vd::h5::read_string_attribute(vd::h5::open_group(file, grp), "layer");
    SCOPED_TRACE(text);
    const auto x = vd::h5::read_dataset<float>(file, grp + "/x");
    const auto g = vd::h5::read_dataset<float>(file, grp + "/g");
    const auto y = vd::h5::read_dataset<float>(file, grp + "/y");
    const auto dx = vd::h5::read_dataset<float>(file, grp + "/dx");
    ASSERT_EQ(x.dims.size(), 4u);
    const int N = static_cast<int>(x.dims[0]);
    const Shape in{static_cast<int>(x.dims[1]), static_cast<int>(x.dims[2]),
                   static_cast<int>(x.dims[3])};
    auto layer = make_layer(store, grp, in, text);
    ASSERT_EQ(layer->out_shape(), (Shape{static_cast<int>(y.dims[1]), static_cast<int>(y.dims[2]),
                                         static_cast<int>(y.dims[3])}));
    // Plain, and blocked with padding (20 channels in nChw16c), as a convolution leaves it.
    for (const tag t : {tag::nchw, tag::nChw16c}) {
      SCOPED_TRACE(t == tag::nchw ? "nchw" : "nChw16c");
      const vd::Layout src_layout({N, in.c, in.h, in.w}, dt::f32, t);
      const LayerRun r = run_layer(ctx, *layer, N, src_layout, x.data, g.data);
      // dst in src's format: nothing reordered on the way to the next layer.
      const Shape os = layer->out_shape();
      EXPECT_EQ(r.dst_layout, vd::Layout({N, os.c, os.h, os.w}, dt::f32, t));
      EXPECT_TRUE(close_to_torch(r.y, y.data, 1e-5)) << "forward";
      EXPECT_TRUE(close_to_torch(r.dx, dx.data, 1e-5)) << "backward";
    }
  }
  EXPECT_EQ(groups, 8) << "layers_pytorch.py wrote another set of layers";
}

}  // namespace
