// Tests of bf16 compute (--precision bf16) layer by layer: fc, and conv and transposed conv on
// images, signals and volumes, in bf16 against the same layer in f32, outputs and every
// gradient, within a bound derived from bf16's rounding; and the names and the CPU check of
// nn/precision.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/builder.hpp"
#include "nn/conv.hpp"
#include "nn/graph.hpp"
#include "nn/linear.hpp"
#include "nn/precision.hpp"
#include "nn/relu.hpp"
#include "nn/reshape.hpp"

namespace {

using vd::Activation;
using vd::Precision;
using vd::Shape;

#define REQUIRE_BF16()                                                                         \
  do {                                                                                         \
    if (!vd::cpu_has_bf16())                                                                   \
      GTEST_SKIP() << "this CPU has no native bf16 (oneDNN ISA " << vd::cpu_isa_name() << ")"; \
  } while (0)

// One layer in a Graph of its own, with its parameters in its own store.
struct OneLayer {
  vd::ParamStore store;
  std::unique_ptr<vd::Graph> seq;
  vd::Context ctx;
};
using Builder = std::function<void(OneLayer&)>;

std::unique_ptr<OneLayer> make(const Builder& build, Precision p,
                               const std::vector<float>& params) {
  auto m = std::make_unique<OneLayer>();
  build(*m);
  m->store.finalize();
  for (const auto& l : m->seq->layers()) l->set_precision(p);
  std::copy(params.begin(), params.end(), m->store.params().begin());
  return m;
}

// Everything a forward and a backward pass give: dst, the parameter gradients, diff_src.
struct Pass {
  std::vector<float> dst, grads, diff_src;
};

Pass run(OneLayer& m, int n, const std::vector<float>& src, const std::vector<float>& diff_dst) {
  Pass r;
  const float* y = m.seq->forward(m.ctx, n, src.data());
  r.dst.assign(y, y + diff_dst.size());
  std::vector<float> dd = diff_dst;
  r.diff_src.resize(src.size());
  m.seq->backward(m.ctx, n, src.data(), dd.data(), r.diff_src.data());
  r.grads.assign(m.store.grads().begin(), m.store.grads().end());
  return r;
}

std::vector<float> absolute(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// Every output of these layers is a sum of products a*b (plus a bias). bf16 keeps 8 significant
// bits, so each operand read in bf16 is off by at most 2^-9 of itself and each product by at
// most (1 + 2^-9)^2 - 1 < 2^-8 = 0.0039 of |a*b|; the sums run in f32 (K <= 2048 terms add at
// most K * 2^-24 < 1.3e-4 relative). So |bf16 - f32| <= 0.0041 * sum |a*b|, and sum |a*b| is
// what the same f32 layer gives for |src|, |params| and |diff_dst|. The test allows 1e-2 of it
// (2.4x the bound), elementwise: relative ~1e-2 where nothing cancels, and no false alarm
// where the terms cancel to nearly zero. It also demands some difference somewhere, so a
// layer that silently stayed in f32 fails.
void expect_within_bf16(const std::vector<float>& bf16, const std::vector<float>& f32,
                        const std::vector<float>& magnitude, const std::string& what,
                        bool must_differ = true) {
  ASSERT_EQ(bf16.size(), f32.size());
  double max_diff = 0;
  int bad = 0;
  for (size_t i = 0; i < f32.size(); ++i) {
    const double d = std::fabs(static_cast<double>(bf16[i]) - f32[i]);
    max_diff = std::max(max_diff, d);
    if (!(d <= 1e-2 * magnitude[i] + 1e-6) && ++bad <= 3)
      ADD_FAILURE() << what << "[" << i << "]: bf16 " << bf16[i] << ", f32 " << f32[i] << ", bound "
                    << 1e-2 * magnitude[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << f32.size() << " outside the bound";
  if (must_differ) {
    EXPECT_GT(max_diff, 0.0) << what << " is identical in bf16 and f32: did bf16 run?";
  }
}

// grads_in_bf16 = false: the layer computes its parameter gradients from f32 operands even in
// bf16 (a transposed convolution, and on AMX a convolution of fewer than 8 input channels, see
// ConvPrims), so they may equal f32's exactly.
void check_layer(const Builder& build, int n, const std::string& name, bool grads_in_bf16 = true) {
  REQUIRE_BF16();
  vd::Rng rng(7);
  OneLayer probe;
  build(probe);
  probe.store.finalize();
  for (const auto& l : probe.seq->layers()) l->init(rng);
  std::vector<float> params(probe.store.params().begin(), probe.store.params().end());
  std::vector<float> src(static_cast<size_t>(n) * probe.seq->in_shape().size());
  std::vector<float> diff_dst(static_cast<size_t>(n) * probe.seq->out_shape().size());
  rng.fill_normal(src.data(), src.size());
  rng.fill_normal(diff_dst.data(), diff_dst.size());

  auto f32 = make(build, Precision::F32, params);
  auto bf16 = make(build, Precision::BF16, params);
  auto mag = make(build, Precision::F32, absolute(params));
  for (const auto& l : bf16->seq->layers()) {
    if (dynamic_cast<vd::Linear*>(l) || dynamic_cast<vd::Conv2d*>(l)) {
      EXPECT_EQ(l->precision(), Precision::BF16) << l->name();
    }
  }
  const Pass a = run(*f32, n, src, diff_dst);
  const Pass b = run(*bf16, n, src, diff_dst);
  const Pass m = run(*mag, n, absolute(src), absolute(diff_dst));
  expect_within_bf16(b.dst, a.dst, m.dst, name + " dst");
  expect_within_bf16(b.grads, a.grads, m.grads, name + " parameter gradients", grads_in_bf16);
  expect_within_bf16(b.diff_src, a.diff_src, m.diff_src, name + " diff_src");
}

vd::ConvSpec conv(int oc, int k, int s, int p, bool transposed) {
  vd::ConvSpec c;
  c.out_channels = oc;
  c.kernel = k;
  c.stride = s;
  c.pad = p;
  c.transposed = transposed;
  return c;
}

TEST(Bf16, LinearMatchesF32WithinBf16Rounding) {
  check_layer(
      [](OneLayer& m) {
        m.seq = std::make_unique<vd::Graph>(Shape{784, 1, 1});
        m.seq->add(
            std::make_unique<vd::Linear>(m.store, "fc", m.seq->out_shape(), 400, Activation::None));
      },
      64, "fc 784 -> 400");
}

TEST(Bf16, ConvMatchesF32WithinBf16Rounding) {
  // 32 -> 64 channels: oneDNN picks blocked layouts, as in configs/fashion_conv.cfg.
  check_layer(
      [](OneLayer& m) {
        m.seq = std::make_unique<vd::Graph>(Shape{32, 14, 14});
        m.seq->add(std::make_unique<vd::Conv2d>(m.store, "conv", m.seq->out_shape(),
                                                conv(64, 4, 2, 1, false), Activation::None));
      },
      16, "conv 32 -> 64");
}

TEST(Bf16, TransposedConvMatchesF32WithinBf16Rounding) {
  check_layer(
      [](OneLayer& m) {
        m.seq = std::make_unique<vd::Graph>(Shape{64, 7, 7});
        m.seq->add(std::make_unique<vd::Conv2d>(m.store, "convt", m.seq->out_shape(),
                                                conv(32, 4, 2, 1, true), Activation::None));
      },
      16, "convt 64 -> 32", false);
}

TEST(Bf16, SingleChannelConvAndTransposedConvMatchF32) {
  // The first and last layers of the conv VAE: one channel in, one channel out.
  check_layer(
      [](OneLayer& m) {
        m.seq = std::make_unique<vd::Graph>(Shape{1, 28, 28});
        m.seq->add(std::make_unique<vd::Conv2d>(m.store, "conv", m.seq->out_shape(),
                                                conv(32, 4, 2, 1, false), Activation::None));
        m.seq->add(std::make_unique<vd::Conv2d>(m.store, "convt", m.seq->out_shape(),
                                                conv(1, 4, 2, 1, true), Activation::None));
      },
      8, "conv 1 -> 32 -> convt 1");
}

// A Graph of `layers` (the config syntax) on one sample of shape `in`.
Builder layers_on(const std::string& layers, Shape in) {
  return [layers, in](OneLayer& m) {
    m.seq = std::make_unique<vd::Graph>(in);
    vd::build_layers(*m.seq, m.store, "net", vd::parse_layers(layers, "net"), false, "net");
  };
}

TEST(Bf16, ConvOnSignalsAndVolumesMatchesF32WithinBf16Rounding) {
  check_layer(layers_on("conv 32 k5 s2 p2", Shape::signal(16, 24)), 4, "1-D conv 16 -> 32");
  check_layer(layers_on("conv 16 k3 s2 p1", Shape::volume(8, 6, 6, 6)), 2, "3-D conv 8 -> 16");
  check_layer(layers_on("conv 8 k3x1x2 s1x2x1 p1x0x1", Shape::volume(4, 3, 5, 4)), 2,
              "3-D conv, per-axis sizes", !vd::cpu_has_amx_bf16());
}

TEST(Bf16, TransposedConvOnSignalsAndVolumesMatchesF32WithinBf16Rounding) {
  check_layer(layers_on("convt 16 k4 s2 p1", Shape::signal(32, 12)), 4, "1-D convt 32 -> 16",
              false);
  check_layer(layers_on("convt 8 k4 s2 p1", Shape::volume(16, 3, 3, 3)), 2, "3-D convt 16 -> 8",
              false);
}

TEST(Bf16, PrecisionNamesAndRequests) {
  EXPECT_STREQ(vd::precision_name(Precision::F32), "f32");
  EXPECT_STREQ(vd::precision_name(Precision::BF16), "bf16");
  EXPECT_EQ(vd::resolve_precision("f32"), Precision::F32);
  EXPECT_THROW(vd::resolve_precision("fp16"), vd::ConfigError);
  std::string note;
  const Precision a = vd::resolve_precision("auto", &note);
  if (vd::cpu_has_bf16()) {
    EXPECT_EQ(a, Precision::BF16);
    EXPECT_EQ(vd::resolve_precision("bf16"), Precision::BF16);
    EXPECT_TRUE(note.empty()) << note;
  } else {
    // The refusal itself is checked where the ISA can be lowered: tests/app/precision_test.
    EXPECT_EQ(a, Precision::F32);
    EXPECT_NE(note.find("f32"), std::string::npos) << note;
    EXPECT_THROW(vd::resolve_precision("bf16"), vd::ConfigError);
  }
}

}  // namespace
