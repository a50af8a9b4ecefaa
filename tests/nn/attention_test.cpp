// Tests of vd::Attention (nn/attention.hpp): forward against the double-precision reference of
// tests/support/reference_vae.hpp on plain, channel-blocked (a convolution in front) and nhwc
// inputs; every parameter gradient and diff_src against central finite differences of that
// reference; the same forward and backward in PyTorch (tests/reference/attention_pytorch.py);
// initialisation, the memory refusal, the group and syntax errors; a disabled timing print.
#include "nn/attention.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "nn/conv.hpp"
#include "nn/graph.hpp"
#include "nn/registry.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"
#include "support/temp_dir.hpp"

namespace {

using vd::Attention;
using vd::Graph;
using vd::Shape;

// Legend as in nn/attention.hpp: N samples, C channels, S = H*W tokens, G groups.
struct Case {
  int n;
  Shape in;      // the graph's input
  int groups;    // G of the attention layer
  int conv_out;  // > 0: a 3x3 convolution in -> conv_out channels in front (blocked output)
};

std::vector<float> random_floats(size_t n, uint64_t seed, double spread = 1.0) {
  vd::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(-spread, spread));
  return v;
}

// The graph [conv ->] attn, with PyTorch's initialisation made less regular: GroupNorm's weight
// and bias random (1 and 0 would hide a swap), q and k weights x3 so the softmax is far from
// uniform and its backward matters.
struct Net {
  vd::ParamStore store;
  Graph g;
  vd::Context ctx;
  Attention* attn = nullptr;
  int n;
  explicit Net(const Case& k) : g(k.in), n(k.n) {
    Shape s = k.in;
    if (k.conv_out > 0) {
      vd::ConvSpec spec;
      spec.out_channels = k.conv_out;
      spec.kernel = 3;
      spec.pad = 1;
      g.add(std::make_unique<vd::Conv2d>(store, "conv", s, spec, vd::Activation::None));
      s = g.shape(g.last());
    }
    auto layer = std::make_unique<Attention>(store, "mid.attn1", s, k.groups);
    attn = layer.get();
    g.add(std::move(layer));
    store.finalize();
    vd::Rng rng(11);
    g.init(rng);
    vd::Rng more(12);
    for (const auto& e : store.entries()) {
      float* p = store.param(store.index_of(e.name));
      if (e.name.find("group_norm.weight") != std::string::npos)
        for (size_t i = 0; i < e.size; ++i) p[i] = static_cast<float>(1 + more.uniform(-0.5, 0.5));
      if (e.name.find("group_norm.bias") != std::string::npos)
        for (size_t i = 0; i < e.size; ++i) p[i] = static_cast<float>(more.uniform(-0.5, 0.5));
      if (e.name.find("to_q.weight") != std::string::npos ||
          e.name.find("to_k.weight") != std::string::npos)
        for (size_t i = 0; i < e.size; ++i) p[i] *= 3.0f;
    }
  }
  size_t in_size() const { return static_cast<size_t>(g.in_shape().size()); }
  size_t out_size() const { return static_cast<size_t>(g.out_shape().size()); }
  std::vector<double> params() const {
    const auto pp = store.params();
    return std::vector<double>(pp.begin(), pp.end());
  }
  // Sample b of the reference's output, x [N, D] plain.
  std::vector<double> reference(const std::vector<double>& p, const std::vector<double>& x,
                                int b) const {
    const size_t D = in_size();
    return vd::testing::reference_graph(
        store, p, g, {std::vector<double>(x.begin() + b * D, x.begin() + (b + 1) * D)})[0];
  }
};

// max over entries of |got - want| / max(1, |want|)
double worst_error(const float* got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  return worst;
}

double forward_error(const Case& k) {
  Net net(k);
  const std::vector<float> x = random_floats(k.n * net.in_size(), 21, 2.0);
  const float* y = net.g.forward(net.ctx, k.n, x.data());
  const std::vector<double> xd(x.begin(), x.end()), p = net.params();
  double worst = 0;
  for (int b = 0; b < k.n; ++b)
    worst = std::max(worst, worst_error(y + b * net.out_size(), net.reference(p, xd, b)));
  return worst;
}

TEST(Attention, ForwardMatchesDoubleReferenceOnPlainInput) {
  EXPECT_LT(forward_error({2, Shape{32, 4, 4}, 8, 0}), 1e-5) << "S = 16";
  EXPECT_LT(forward_error({3, Shape{16, 5, 3}, 4, 0}), 1e-5) << "S = 15, not a multiple of 16";
  EXPECT_LT(forward_error({2, Shape{64, 3, 7}, 32, 0}), 1e-5) << "S = 21, G = 32";
  EXPECT_LT(forward_error({1, Shape{8, 1, 5}, 1, 0}), 1e-5) << "one row, one group";
}

TEST(Attention, ForwardMatchesDoubleReferenceAfterABlockedConvolution) {
  for (const Case& k : {Case{2, Shape{16, 6, 5}, 8, 32}, Case{3, Shape{16, 3, 3}, 6, 24}}) {
    Net net(k);
    const std::vector<float> x = random_floats(k.n * net.in_size(), 23, 2.0);
    const float* y = net.g.forward(net.ctx, k.n, x.data());
    // The convolution chose a channel-blocked layout and GroupNorm ran in it (24 channels:
    // with padding channels in the last block).
    EXPECT_GT(net.attn->work_block(k.n), 1) << net.attn->impl_info(net.ctx, k.n);
    const std::vector<double> xd(x.begin(), x.end()), p = net.params();
    double worst = 0;
    for (int b = 0; b < k.n; ++b)
      worst = std::max(worst, worst_error(y + b * net.out_size(), net.reference(p, xd, b)));
    EXPECT_LT(worst, 1e-5) << k.conv_out << " channels";
  }
}

TEST(Attention, AnNhwcInputIsReorderedAndGivesPlainOutputAndGradient) {
  // A layout GroupNorm's kernels do not read: the layer reorders it and returns plain nchw.
  const Case k{2, Shape{16, 3, 5}, 4, 0};
  Net net(k);
  const int n = k.n;
  const vd::Layout nhwc({n, 16, 3, 5}, dnnl::memory::data_type::f32,
                        dnnl::memory::format_tag::nhwc);
  const vd::Layout dst_layout = net.attn->prepare(net.ctx, n, nhwc);
  EXPECT_TRUE(vd::is_plain(dst_layout, n, k.in));
  EXPECT_EQ(net.attn->work_block(n), 1);
  const size_t D = net.in_size();
  const std::vector<float> x = random_floats(n * D, 25, 2.0);
  std::vector<float> x_nhwc(n * D), y(n * D);
  // x_nhwc[n][s][c] = x[n][c][s]
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < 16; ++c)
      for (int s = 0; s < 15; ++s) x_nhwc[(b * 15 + s) * 16 + c] = x[(b * 16 + c) * 15 + s];
  net.attn->forward(net.ctx, n, x_nhwc.data(), y.data());
  const std::vector<double> xd(x.begin(), x.end()), p = net.params();
  for (int b = 0; b < n; ++b)
    EXPECT_LT(worst_error(y.data() + b * D, net.reference(p, xd, b)), 1e-5);

  // The gradient comes back in nhwc: the same as the plain path's, transposed.
  const std::vector<float> r = random_floats(n * D, 26);
  std::vector<float> diff_dst = r, diff_nhwc(n * D, 9.0f);
  net.attn->backward(net.ctx, n, x_nhwc.data(), y.data(), diff_dst.data(), diff_nhwc.data());
  const std::vector<float> grads_nhwc(net.store.grads().begin(), net.store.grads().end());
  std::vector<float> g = r, diff_x(n * D);
  net.g.forward(net.ctx, n, x.data());
  net.g.backward(net.ctx, n, x.data(), g.data(), diff_x.data());
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < 16; ++c)
      for (int s = 0; s < 15; ++s)
        EXPECT_NEAR(diff_nhwc[(b * 15 + s) * 16 + c], diff_x[(b * 16 + c) * 15 + s], 1e-5);
  for (size_t i = 0; i < grads_nhwc.size(); ++i)
    EXPECT_NEAR(grads_nhwc[i], net.store.grads()[i],
                1e-4 * std::max(1.0f, std::abs(grads_nhwc[i])));
}

// Loss = sum r * y over the batch, of the double reference.
double reference_loss(const Net& net, const std::vector<double>& p, const std::vector<double>& x,
                      const std::vector<float>& r) {
  double total = 0;
  for (int b = 0; b < net.n; ++b) {
    const auto y = net.reference(p, x, b);
    for (size_t i = 0; i < y.size(); ++i) total += r[b * y.size() + i] * y[i];
  }
  return total;
}

void check_gradients(const Case& k) {
  Net net(k);
  const size_t D = net.in_size();
  const std::vector<float> x = random_floats(k.n * D, 31, 2.0);
  const std::vector<float> r = random_floats(k.n * net.out_size(), 32);
  net.g.forward(net.ctx, k.n, x.data());
  // Garbage in every gradient: backward must overwrite, not add.
  for (float& v : net.store.grads()) v = 5.0f;
  std::vector<float> g = r, diff_x(x.size(), 7.0f);
  net.g.backward(net.ctx, k.n, x.data(), g.data(), diff_x.data());

  std::vector<double> p = net.params();
  const std::vector<double> xd(x.begin(), x.end());
  vd::Rng pick(33);
  int entries = 0;
  for (const size_t e : net.attn->param_entries()) {
    const auto& entry = net.store.entries()[e];
    ++entries;
    std::vector<double> analytic, numeric;
    for (int t = 0; t < 6; ++t) {
      const size_t i = entry.offset + pick.below(entry.size);
      const double h = 1e-6 * std::max(1.0, std::abs(p[i])), keep = p[i];
      p[i] = keep + h;
      const double fp = reference_loss(net, p, xd, r);
      p[i] = keep - h;
      const double fm = reference_loss(net, p, xd, r);
      p[i] = keep;
      analytic.push_back(net.store.grads()[i]);
      numeric.push_back((fp - fm) / (2 * h));
    }
    EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 1e-3)) << entry.name;
  }
  EXPECT_EQ(entries, 10);
  std::vector<double> analytic, numeric;
  for (int t = 0; t < 30; ++t) {
    const size_t i = pick.below(x.size());
    std::vector<double> xp = xd, xm = xd;
    xp[i] += 1e-5;
    xm[i] -= 1e-5;
    analytic.push_back(diff_x[i]);
    numeric.push_back((reference_loss(net, p, xp, r) - reference_loss(net, p, xm, r)) / 2e-5);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 1e-3)) << "diff_src";

  // A second backward gives the same gradients (nothing accumulates across steps).
  const std::vector<float> first(net.store.grads().begin(), net.store.grads().end());
  g = r;
  net.g.backward(net.ctx, k.n, x.data(), g.data(), diff_x.data());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), net.store.grads().begin()));
}

TEST(Attention, GradientsMatchFiniteDifferencesOnPlainInput) {
  check_gradients({2, Shape{16, 5, 3}, 4, 0});
}

TEST(Attention, GradientsMatchFiniteDifferencesAfterABlockedConvolution) {
  check_gradients({2, Shape{16, 4, 3}, 8, 32});
}

TEST(Attention, WithoutDiffSrcTheParameterGradientsAreTheSame) {
  const Case k{2, Shape{16, 3, 3}, 4, 0};
  Net net(k);
  const std::vector<float> x = random_floats(k.n * net.in_size(), 41);
  const std::vector<float> r = random_floats(k.n * net.out_size(), 42);
  net.g.forward(net.ctx, k.n, x.data());
  std::vector<float> g = r, diff_x(x.size());
  net.g.backward(net.ctx, k.n, x.data(), g.data(), diff_x.data());
  const std::vector<float> with(net.store.grads().begin(), net.store.grads().end());
  g = r;
  net.g.backward(net.ctx, k.n, x.data(), g.data(), nullptr);
  EXPECT_TRUE(std::equal(with.begin(), with.end(), net.store.grads().begin()));
}

// ---------------------------------------------------------------------------------------------
// PyTorch

// Debian's python3 with torch and h5py, or "" (the python3 on PATH may lack torch).
std::string torch_python() {
  for (const std::string py : {"/usr/bin/python3", "python3"}) {
    const auto r = vd::testing::run_command(py + " -c 'import torch, h5py, numpy'", 120);
    if (r.exit_code == 0) return py;
  }
  return "";
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::abs(x)));
  return m;
}

// max |got - want| <= tol * scale, scale = max |want| by default: relative to the tensor's size.
::testing::AssertionResult close_to(const std::vector<float>& got, const std::vector<float>& want,
                                    double tol, double scale = -1) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << got.size() << " values, want " << want.size();
  double err = 0;
  for (size_t i = 0; i < got.size(); ++i)
    err = std::max(err, static_cast<double>(std::abs(got[i] - want[i])));
  if (scale < 0) scale = max_abs(want);
  if (err <= tol * scale)
    return ::testing::AssertionSuccess() << "max error " << err << " of max " << scale;
  return ::testing::AssertionFailure() << "max error " << err << " > " << tol << " * " << scale;
}

TEST(Attention, MatchesPyTorchForwardAndBackward) {
  const std::string py = torch_python();
  if (py.empty())
    GTEST_SKIP() << "no python3 with torch, h5py and numpy (Debian's /usr/bin/python3)";
  const Case k{2, Shape{64, 5, 6}, Attention::kDefaultGroups, 0};
  Net net(k);
  const int64_t dims[4] = {k.n, k.in.c, k.in.h, k.in.w};
  const std::vector<float> x = random_floats(k.n * net.in_size(), 51, 2.0);
  const std::vector<float> r = random_floats(k.n * net.out_size(), 52);
  std::vector<float> y(x.size()), g = r, diff_x(x.size());
  const float* out = net.g.forward(net.ctx, k.n, x.data());
  std::copy(out, out + y.size(), y.begin());
  net.g.backward(net.ctx, k.n, x.data(), g.data(), diff_x.data());

  vd::testing::TempDir dir;
  const std::string in_path = dir.file("in.h5"), out_path = dir.file("out.h5");
  const std::string prefix = net.attn->name() + ".";
  {
    vd::h5::File f = vd::h5::create_file(in_path);
    vd::h5::write_dataset<float>(f, "x", x, dims);
    vd::h5::write_dataset<float>(f, "grad_y", r, dims);
    vd::h5::Group params = vd::h5::create_group(f, "params");
    for (const size_t e : net.attn->param_entries()) {
      const auto& entry = net.store.entries()[e];
      const float* v = net.store.param(e);
      vd::h5::write_dataset<float>(params, entry.name.substr(prefix.size()),
                                   std::vector<float>(v, v + entry.size), entry.shape);
    }
    vd::h5::write_attribute(f, "groups", static_cast<int64_t>(net.attn->groups()));
    vd::h5::write_attribute(f, "eps", static_cast<double>(net.attn->eps()));
  }
  const std::string script = std::string(VD_SOURCE_DIR) + "/tests/reference/attention_pytorch.py";
  const auto run = vd::testing::run_command(
      "OMP_NUM_THREADS=1 " + py + " " + script + " " + in_path + " " + out_path, 300);
  ASSERT_EQ(run.exit_code, 0) << run.output;

  vd::h5::File f = vd::h5::open_file(out_path);
  EXPECT_TRUE(close_to(y, vd::h5::read_dataset<float>(f, "y").data, 1e-4)) << "y";
  EXPECT_TRUE(close_to(diff_x, vd::h5::read_dataset<float>(f, "grad_x").data, 1e-4)) << "diff_x";
  for (const size_t e : net.attn->param_entries()) {
    const auto& entry = net.store.entries()[e];
    const float* gr = net.store.grad(e);
    const std::string name = entry.name.substr(prefix.size());
    // to_k.bias adds q.bk to every score of a query, which the softmax ignores: its gradient is
    // 0 in exact arithmetic and rounding noise in both, so it is measured against to_k.weight's.
    const double scale =
        name == "to_k.bias" ? max_abs(vd::h5::read_dataset<float>(f, "grad/to_k.weight").data) : -1;
    EXPECT_TRUE(close_to(std::vector<float>(gr, gr + entry.size),
                         vd::h5::read_dataset<float>(f, "grad/" + name).data, 1e-4, scale))
        << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Initialisation, sizes, errors, the layer kind

TEST(Attention, InitDrawsPyTorchDefaultsInDiffusersOrder) {
  vd::ParamStore store;
  Attention a(store, "m.attn1", Shape{8, 2, 2}, 4);
  store.finalize();
  vd::Rng rng(7), want(7);
  a.init(rng);
  const double bound = 1.0 / std::sqrt(8.0);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(store.param(store.index_of("m.attn1.group_norm.weight"))[i], 1.0f);
    EXPECT_EQ(store.param(store.index_of("m.attn1.group_norm.bias"))[i], 0.0f);
  }
  for (const char* m : {"to_q", "to_k", "to_v", "to_out"})
    for (const char* part : {".weight", ".bias"}) {
      const auto& e = store.find(std::string("m.attn1.") + m + part);
      for (size_t i = 0; i < e.size; ++i)
        ASSERT_EQ(store.params()[e.offset + i], static_cast<float>(want.uniform(-bound, bound)))
            << e.name << "[" << i << "]";
    }
  EXPECT_EQ(a.param_entries().size(), 10u);
  EXPECT_EQ(store.find("m.attn1.to_out.weight").shape, (std::vector<int64_t>{8, 8}));
  // 4 projections of S*C*C and two S*S*C products, x 2: S = 4, C = 8.
  EXPECT_EQ(a.flops_per_sample(), 2.0 * (4 * 4 * 8 * 8 + 2 * 4 * 4 * 8));
}

std::string shape_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const vd::ShapeError& e) {
    return e.what();
  }
  return "(no ShapeError)";
}

TEST(Attention, RefusesScoreMatricesOverTheBudget) {
  vd::ParamStore store;
  Attention a(store, "encoder.attn1", Shape{4, 64, 64}, 4);
  store.finalize();
  vd::Context ctx;
  const Shape s{4, 64, 64};
  const std::string msg = shape_error([&] { a.prepare(ctx, 128, vd::plain_layout(128, s)); });
  // 128 * 4096^2 * 4 bytes * 2 matrices = 17.2 GB
  for (const char* part : {"encoder.attn1", "64x64 map", "4096 x 4096 scores per sample",
                           "17.2 GB for a batch of 128", "after more down-sampling"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;
  // 8 samples need 1.07 GB: within the budget.
  EXPECT_NO_THROW(a.prepare(ctx, 8, vd::plain_layout(8, s)));
  EXPECT_EQ(Attention::score_bytes(8, 64 * 64), 8.0 * 4096 * 4096 * 4 * 2);
}

TEST(Attention, GroupsThatDoNotDivideTheChannelsAreRefusedWithADivisor) {
  vd::ParamStore store;
  const std::string msg = shape_error([&] {
    Attention(store, "decoder.attn1", Shape{48, 4, 4}, 32);
  });
  for (const char* part : {"decoder.attn1", "32 groups", "48 channels", "'attn g24'"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;
  const std::string flat = shape_error([&] { Attention(store, "e.attn2", Shape{64, 1, 1}); });
  for (const char* part : {"e.attn2", "image input", "reshape"})
    EXPECT_NE(flat.find(part), std::string::npos) << part << " in: " << flat;
}

TEST(Attention, TheAttnKindChecksItsWordsAndBuildsTheLayer) {
  const vd::LayerKind* kind = vd::find_layer_kind("attn");
  ASSERT_NE(kind, nullptr);
  EXPECT_EQ(kind->syntax, "attn [gG]");
  EXPECT_EQ(kind->torch, "diffusers Attention (one head, residual)");
  EXPECT_TRUE(kind->params);
  const auto text = [](const std::string& s) { return vd::split_layer_list(s).at(0); };
  EXPECT_NO_THROW(kind->check(text("attn")));
  EXPECT_NO_THROW(kind->check(text("attn g16")));
  const auto syntax = [&](const std::string& s) -> std::string {
    try {
      kind->check(text(s));
    } catch (const vd::SyntaxError& e) {
      return e.what();
    }
    return "(no SyntaxError)";
  };
  EXPECT_NE(syntax("attn g0").find("'g0' is not a group count"), std::string::npos);
  EXPECT_NE(syntax("attn 32").find("'32' is not a group count"), std::string::npos);
  EXPECT_NE(syntax("attn gx").find("'gx' is not a group count"), std::string::npos);
  EXPECT_NE(syntax("attn g8 g4").find("at most one setting"), std::string::npos);
  EXPECT_NE(syntax("attn(fc 3)").find("no layers in parentheses"), std::string::npos);

  vd::ParamStore store;
  const auto layer = kind->build(
      vd::BuildSite{
          .store = store, .name = "decoder.attn1", .in = Shape{32, 4, 4}, .what = "decoder"},
      text("attn g8"));
  EXPECT_EQ(layer->describe(), "attn g8");
  EXPECT_EQ(layer->out_shape(), (Shape{32, 4, 4}));
  EXPECT_EQ(layer->param_entries().size(), 10u);
  EXPECT_NO_THROW(store.find("decoder.attn1.to_v.bias"));
  const auto plain = kind->build(
      vd::BuildSite{
          .store = store, .name = "decoder.attn2", .in = Shape{64, 2, 2}, .what = "decoder"},
      text("attn"));
  EXPECT_EQ(dynamic_cast<const Attention&>(*plain).groups(), 32);
}

// Run with --gtest_also_run_disabled_tests --gtest_filter=AttentionBench.*: forward + backward
// of N = 16, C = 128 on an 8x8 map (the diffusers mid-block at a small scale), one thread.
TEST(AttentionBench, DISABLED_PrintsForwardBackwardTime) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  for (const bool blocked : {false, true}) {
    const Case k{16, Shape{128, 8, 8}, 32, 0};
    Net net(k);
    Attention* a = net.attn;
    const std::vector<float> x = random_floats(k.n * net.in_size(), 61);
    const std::vector<float> r = random_floats(k.n * net.out_size(), 62);
    // The layer alone, src plain or as a convolution before it would leave it.
    vd::Context& ctx = net.ctx;
    const vd::Layout src_layout = blocked
                                      ? vd::Layout({k.n, 128, 8, 8}, dnnl::memory::data_type::f32,
                                                   dnnl::memory::format_tag::nChw16c)
                                      : vd::plain_layout(k.n, k.in);
    a->prepare(ctx, k.n, src_layout);
    const size_t floats = vd::layout_floats(src_layout);
    std::vector<float> src(floats), dst(floats), diff(floats), diff_src(floats);
    std::copy(x.begin(), x.end(), src.begin());
    std::vector<double> fwd, bwd;
    for (int rep = 0; rep < 30; ++rep) {
      std::copy(r.begin(), r.end(), diff.begin());
      const auto t0 = std::chrono::steady_clock::now();
      a->forward(ctx, k.n, src.data(), dst.data());
      const auto t1 = std::chrono::steady_clock::now();
      a->backward(ctx, k.n, src.data(), dst.data(), diff.data(), diff_src.data());
      const auto t2 = std::chrono::steady_clock::now();
      fwd.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      bwd.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    std::sort(fwd.begin(), fwd.end());
    std::sort(bwd.begin(), bwd.end());
    const double f = fwd[fwd.size() / 2], b = bwd[bwd.size() / 2];
    std::printf(
        "attn N=16 C=128 8x8, src %s, 1 thread: forward %.3f ms (%.1f GFLOP/s), "
        "backward %.3f ms\n  %s\n",
        blocked ? "nChw16c" : "nchw", f, a->flops_per_sample() * k.n / f * 1e-6, b,
        a->impl_info(ctx, k.n).c_str());
  }
  omp_set_num_threads(threads);
}

}  // namespace
